/******************************************************************************
 * pascal-fpga RTL library: the matrix-vector unit of the weighted layers.
 *
 * @brief   Tokens (feeder -> MVU) in, one output word per window and fold out:
 *          PE thermometer-coded channels (threshold emitter) or PE accumulators
 *          (CLASSIFIER = 1). The RTL twin of pascal::mvu<CFG, Emitter>
 *          (pascal_fpga/hls/include/pascal/mvu.h); the contract it follows cycle for
 *          cycle is pascal_fpga/rtl/README.md, its schedule pascal_fpga/hls/ARCHITECTURE.md.
 *
 * Parameters
 *   SIMD        input lanes (channels of one input group) added per slot        (>= 1)
 *   PE          outputs computed in parallel, one accumulator each              (>= 1)
 *   T_IN        frames per input lane in a token                                (>= 1)
 *   FB          bits per input frame: 1 = spikes (a spike adds its weight),
 *               > 1 = unsigned counts / pixel values (adds weight * frame)      (>= 1)
 *   SF          input groups per window (the input vector has SF*SIMD entries)  (>= 1)
 *   NF          output folds (the layer has NF*PE outputs)                      (>= 1)
 *   WINDOWS     windows (input vectors) per image: OUT_H*OUT_W (conv) or 1      (>= 1)
 *   T_OUT       output frames per channel (threshold emitter; unused else)     (>= 1)
 *   WB          weight bits (two's complement)                                  (>= 1)
 *   ACC_BITS    accumulator, threshold and bias bits (two's complement; the
 *               accumulators wrap around, the final values fit)                 (>= 1)
 *   CLASSIFIER  0: threshold emitter, 1: classifier emitter (bias, accumulators out)
 *   WEIGHT_FILE $readmemh file of NF*SF lines: line nf*SF + sf holds the weight of
 *               output nf*PE + pe, input (sf*SIMD + s) at bits [(pe*SIMD+s)*WB +: WB]
 *   PARAM_FILE  $readmemh file of NF lines: thresholds, (pe, k) at
 *               [(pe*T_OUT+k)*ACC_BITS +: ACC_BITS], or (CLASSIFIER) bias pe at
 *               [pe*ACC_BITS +: ACC_BITS]
 *
 * Ports (the common interface of the stage modules)
 *   in_data   token of TOKEN_W = SIMD*T_IN*FB + SFB + AB + 1 bits: frames at
 *             [0 +: SIMD*T_IN*FB] (lane s, frame t at (s*T_IN + t)*FB), sf next (SFB =
 *             bits(max(SF-1, 1))), then active (AB = bits(T_IN)), end at the MSB
 *   out_data  PE*T_OUT bits (bit pe*T_OUT + k = acc[pe] >= threshold[nf][pe][k], signed)
 *             or, CLASSIFIER = 1, PE*ACC_BITS bits (accumulator pe at [pe*ACC_BITS +: ..])
 *
 * Schedule (one slot per cycle; per window, WINDOWS windows per image)
 *   fold 0:          per token one R slot (read it, keep it in the window buffer, add
 *                    frame 0), then active-1 C slots (frames 1..active-1); the END
 *                    token: one R slot that emits fold 0;
 *   folds 1..NF-1:   the buffered tokens replayed (sum(active) C slots), then one slot
 *                    that emits the fold.
 *   An emission leaves P = 3 slots after its slot; each image ends with 3 drain slots
 *   (only the delayed writes) and then exactly 2 idle cycles. Accumulators start each
 *   fold at 0 (threshold) or bias[nf] (classifier), also for a window without tokens.
 *
 * Pipeline (4 stages; one global enable `fire`, README "global stall")
 *   stage 0 (slot s):  the slot sequencer picks the token (in_data in R slots, the
 *                      window buffer's registered read port when replaying, the
 *                      current token's shifted frames in C slots), issues the weight
 *                      ROM address nf*SF + sf and registers frame 0 of each lane.
 *   stage 1 (s + 1):   the weight ROM's registered read (its data register); param ROM
 *                      read (fold of the item).
 *   stage 2 (s + 2):   the ROMs' output registers (a plain registered copy of the
 *                      registered read: the block RAM's clock-to-output ends here, not
 *                      in front of the arithmetic); SIMD products per PE summed by a
 *                      balanced adder tree into a register.
 *   stage 3 (s + 3):   accumulate (acc = (first ? init : acc) + sum); an emission item
 *                      here is the output word (out_valid), computed from the
 *                      accumulator and the registered param word.
 *   fire = (!rd || in_valid) && (!wr || out_ready): rd = stage 0 is an R slot, wr =
 *   stage 3 holds an emission. Nothing advances unless fire.
 *****************************************************************************/
`default_nettype none

module pascal_mvu #(
    parameter integer SIMD = 1,
    parameter integer PE = 1,
    parameter integer T_IN = 1,
    parameter integer FB = 1,
    parameter integer SF = 1,
    parameter integer NF = 1,
    parameter integer WINDOWS = 1,
    parameter integer T_OUT = 1,
    parameter integer WB = 2,
    parameter integer ACC_BITS = 8,
    parameter integer CLASSIFIER = 0,
    parameter WEIGHT_FILE = "",
    parameter PARAM_FILE = "",

    // derived widths (not to be overridden)
    localparam integer FR_W = SIMD * T_IN * FB,                   // token frames
    localparam integer SFB = $clog2((SF > 1 ? SF - 1 : 1) + 1),   // bits(max(SF-1, 1))
    localparam integer AB = $clog2(T_IN + 1),                     // bits(T_IN)
    localparam integer TOKEN_W = FR_W + SFB + AB + 1,
    localparam integer OUT_W = CLASSIFIER != 0 ? PE * ACC_BITS : PE * T_OUT
) (
    input  wire               clk,
    input  wire               rst,
    input  wire [TOKEN_W-1:0] in_data,
    input  wire               in_valid,
    output wire               in_ready,
    output wire [OUT_W-1:0]   out_data,
    output wire               out_valid,
    input  wire               out_ready
);

    // ------------------------------------------------------------------ widths
    localparam integer BUF_W = FR_W + SFB + AB;                   // a token without `end`
    localparam integer W_W = PE * SIMD * WB;                      // weight ROM word
    localparam integer P_W = CLASSIFIER != 0 ? PE * ACC_BITS : PE * T_OUT * ACC_BITS;
    localparam integer ROWS = NF * SF;
    localparam integer AW = ROWS > 1 ? $clog2(ROWS) : 1;          // weight ROM address
    localparam integer PAW = NF > 1 ? $clog2(NF) : 1;             // param ROM address
    localparam integer NFW = $clog2(NF + 1);                      // fold counter
    localparam integer CW = $clog2(SF + 1);                       // tokens in the buffer
    localparam integer BAW = SF > 1 ? $clog2(SF) : 1;             // window buffer address
    localparam integer WNW = $clog2(WINDOWS + 1);                 // window counter
    localparam integer LW = AB;                                   // frames left of a token
    localparam integer PROD_W = WB + FB;                          // weight * frame
    localparam integer TREE_W = PROD_W + $clog2(SIMD);            // exact sum of SIMD products
    localparam integer SUM_W = TREE_W < ACC_BITS ? TREE_W : ACC_BITS;
    localparam integer LEAVES = 1 << $clog2(SIMD);
    localparam integer NODES = 2 * LEAVES - 1;
    localparam integer ROM_LUT_DEPTH = 64;                        // deeper ROMs: block RAM

    // ------------------------------------------------------------------ handshake
    reg  s3_emit;                // stage 3 holds an emission: a write is due
    wire rd;                     // the current slot reads the input
    wire wr = s3_emit;
    wire fire = (!rd || in_valid) && (!wr || out_ready);
    assign in_ready = rd && (!wr || out_ready);
    assign out_valid = wr && (!rd || in_valid);

    // ------------------------------------------------------------------ stage 0: slot sequencer
    // tail: 0 = the image's HLS slots, 1..3 = drain slots, 4..5 = idle cycles
    reg  [2:0]       tail;
    reg  [NFW-1:0]   nf;
    reg  [AW-1:0]    nf_base;    // nf * SF
    reg  [LW-1:0]    left;       // frames of the current token still to add (0: take a token)
    reg  [FR_W-1:0]  cur_frames; // the current token's frames, shifted: frame 0 = the next one
    reg  [SFB-1:0]   cur_sf;
    reg  [CW-1:0]    stored;     // tokens of the window in the buffer (fold 0)
    reg  [CW-1:0]    replay;     // folds 1..NF-1: the next buffered token
    reg  [WNW-1:0]   windows;
    reg              fresh;      // the fold has added nothing yet

    wire [FR_W-1:0] in_frames = in_data[0 +: FR_W];
    wire [SFB-1:0]  in_sf = in_data[FR_W +: SFB];
    wire [AB-1:0]   in_act = in_data[FR_W + SFB +: AB];
    wire            in_end = in_data[TOKEN_W - 1];

    wire [BUF_W-1:0] buf_q;      // the window buffer's registered read port: entry `replay`
    wire [FR_W-1:0]  rp_frames = buf_q[0 +: FR_W];
    wire [SFB-1:0]   rp_sf = buf_q[FR_W +: SFB];
    wire [AB-1:0]    rp_act = buf_q[FR_W + SFB +: AB];

    wire busy = tail == 3'd0;
    wire c_slot = busy && left != {LW{1'b0}};
    wire r_slot = busy && left == {LW{1'b0}} && nf == {NFW{1'b0}};
    wire p_slot = busy && left == {LW{1'b0}} && nf != {NFW{1'b0}} && replay != stored;
    wire take_in = r_slot && !in_end;
    wire e_slot = (r_slot && in_end) ||
                  (busy && left == {LW{1'b0}} && nf != {NFW{1'b0}} && replay == stored);
    wire add = c_slot || take_in || p_slot;
    wire last_fold = nf == NFW'(NF - 1);
    wire last_window = windows == WNW'(WINDOWS - 1);
    assign rd = r_slot;

    // the token of this slot: frames (frame 0 of each lane is this slot's), sf, active
    wire [FR_W-1:0] src_frames = c_slot ? cur_frames : (r_slot ? in_frames : rp_frames);
    wire [SFB-1:0]  src_sf = c_slot ? cur_sf : (r_slot ? in_sf : rp_sf);
    wire [AB-1:0]   src_act = r_slot ? in_act : rp_act;
    wire [AW-1:0]   w_addr = r_slot ? AW'(in_sf) : nf_base + AW'(src_sf);  // fold 0: nf_base = 0

    always @(posedge clk) begin
        if (rst) begin
            tail <= 3'd0;
            nf <= {NFW{1'b0}};
            nf_base <= {AW{1'b0}};
            left <= {LW{1'b0}};
            stored <= {CW{1'b0}};
            replay <= {CW{1'b0}};
            windows <= {WNW{1'b0}};
            fresh <= 1'b1;
        end else if (fire) begin
            if (!busy) begin
                tail <= tail == 3'd5 ? 3'd0 : tail + 3'd1;
            end
            if (add) begin
                fresh <= 1'b0;
                if (c_slot) begin
                    left <= left - LW'(1);
                end else begin
                    left <= src_act == {AB{1'b0}} ? {LW{1'b0}} : LW'(src_act - AB'(1));
                end
            end
            if (take_in) begin
                stored <= stored + CW'(1);
            end
            if (p_slot) begin
                replay <= replay + CW'(1);
            end
            if (e_slot) begin
                fresh <= 1'b1;
                replay <= {CW{1'b0}};
                if (last_fold) begin
                    nf <= {NFW{1'b0}};
                    nf_base <= {AW{1'b0}};
                    stored <= {CW{1'b0}};
                    if (last_window) begin
                        windows <= {WNW{1'b0}};
                        tail <= 3'd1;
                    end else begin
                        windows <= windows + WNW'(1);
                    end
                end else begin
                    nf <= nf + NFW'(1);
                    nf_base <= nf_base + AW'(SF);
                end
            end
        end
    end

    // the current token: kept for its C slots, frames shifted by one frame per slot
    always @(posedge clk) begin
        if (fire && add) begin
            cur_frames <= src_frames >> FB;
            if (!c_slot) begin
                cur_sf <= src_sf;
            end
        end
    end

    // window buffer: fold 0's tokens, replayed by folds 1..NF-1 (read one slot ahead)
    generate
        if (NF > 1) begin : g_buffer
            reg [BUF_W-1:0] mem [0:SF-1];
            reg [BUF_W-1:0] q;
            // replay_next reaches SF (its MSB, SF a power of 2) only after the last replay:
            // that read is never used
            /* verilator lint_off UNUSEDSIGNAL */
            wire [CW-1:0] replay_next = e_slot ? {CW{1'b0}} : (p_slot ? replay + CW'(1) : replay);
            /* verilator lint_on UNUSEDSIGNAL */
            always @(posedge clk) begin
                if (fire && take_in) begin
                    mem[BAW'(stored)] <= in_data[0 +: BUF_W];
                end
            end
            always @(posedge clk) begin
                if (fire) begin
                    q <= mem[BAW'(replay_next)];
                end
            end
            assign buf_q = q;
        end else begin : g_no_buffer
            assign buf_q = {BUF_W{1'b0}};
        end
    endgenerate

    // ------------------------------------------------------------------ stage 0 -> 1 -> 2
    wire [W_W-1:0]      s1_w;    // the weight ROM's registered read (data register)
    reg [W_W-1:0]       s2_w;    // its output register
    reg [SIMD*FB-1:0]   s1_lanes;
    reg                 s1_add, s1_emit, s1_fresh;
    reg [PAW-1:0]       s1_nf;

    // weight ROM, synchronous read plus an output register (both enabled by fire: a block
    // RAM's REGMODE = OUTREG / DOA_REG = 1 where the synthesis tool absorbs it, FFs next to
    // it otherwise); block RAM deeper than ROM_LUT_DEPTH words, LUTs up to it (pascal_rom)
    pascal_rom #(.WIDTH(W_W), .DEPTH(ROWS), .AW(AW), .FILE(WEIGHT_FILE),
                 .LUT_DEPTH(ROM_LUT_DEPTH)) weight_rom (
        .clk(clk), .en(fire), .addr(w_addr), .q(s1_w));
    always @(posedge clk) begin
        if (fire) begin
            s2_w <= s1_w;
        end
    end

    genvar s;
    generate
        for (s = 0; s < SIMD; s = s + 1) begin : g_lane
            always @(posedge clk) begin
                if (fire) begin
                    s1_lanes[s * FB +: FB] <= src_frames[s * T_IN * FB +: FB];
                end
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            s1_add <= 1'b0;
            s1_emit <= 1'b0;
        end else if (fire) begin
            s1_add <= add;
            s1_emit <= e_slot;
        end
    end

    always @(posedge clk) begin
        if (fire) begin
            s1_fresh <= fresh;
            s1_nf <= PAW'(nf);
        end
    end

    // ------------------------------------------------------------------ stage 1 -> 2
    wire [P_W-1:0]      s2_param;    // the param ROM's registered read (data register)
    reg [SIMD*FB-1:0]   s2_lanes;
    reg                 s2_add, s2_emit, s2_fresh;

    // threshold / bias ROM (one word per fold), synchronous read of the stage-1 item's fold,
    // then an output register (s3_param) like the weight ROM's
    pascal_rom #(.WIDTH(P_W), .DEPTH(NF), .AW(PAW), .FILE(PARAM_FILE),
                 .LUT_DEPTH(ROM_LUT_DEPTH)) param_rom (
        .clk(clk), .en(fire), .addr(s1_nf), .q(s2_param));

    always @(posedge clk) begin
        if (fire) begin
            s2_lanes <= s1_lanes;
            s2_fresh <= s1_fresh;
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            s2_add <= 1'b0;
            s2_emit <= 1'b0;
        end else if (fire) begin
            s2_add <= s1_add;
            s2_emit <= s1_emit;
        end
    end

    // ------------------------------------------------------------------ stage 2 -> 3
    reg [P_W-1:0]       s3_param;    // the param ROM's output register
    reg [PE*SUM_W-1:0]  s3_sum;
    reg                 s3_add, s3_fresh;

    always @(posedge clk) begin
        if (fire) begin
            s3_param <= s2_param;
        end
    end

    // per PE: SIMD products weight * frame (the registered weights of the ROM's output
    // register), a balanced adder tree (heap order: node n has the children 2n+1 and 2n+2,
    // the leaves are LEAVES-1 .. 2*LEAVES-2), registered
    genvar pe, n;
    generate
        for (pe = 0; pe < PE; pe = pe + 1) begin : g_pe
            // split_var: the nodes are independent wires (no combinational loop); a 1-bit tree
            // (SIMD = 1, ACC_BITS = 1) cannot be split and needs no splitting
            /* verilator lint_off SPLITVAR */
            wire [NODES*SUM_W-1:0] node /* verilator split_var */;
            /* verilator lint_on SPLITVAR */
            for (n = 0; n < LEAVES; n = n + 1) begin : g_leaf
                if (n < SIMD) begin : g_product
                    wire signed [WB-1:0] w = s2_w[(pe * SIMD + n) * WB +: WB];
                    wire [FB-1:0] f = s2_lanes[n * FB +: FB];
                    // ACC_BITS < PROD_W: the products' high bits are dropped (the sums wrap
                    // around modulo 2^ACC_BITS like the accumulators)
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire signed [PROD_W-1:0] p;
                    /* verilator lint_on UNUSEDSIGNAL */
                    if (FB == 1) begin : g_spike
                        assign p = f[0] ? PROD_W'(w) : {PROD_W{1'b0}};
                    end else begin : g_count
                        assign p = PROD_W'(w * $signed({1'b0, f}));
                    end
                    assign node[(LEAVES - 1 + n) * SUM_W +: SUM_W] = SUM_W'(p);
                end else begin : g_pad
                    assign node[(LEAVES - 1 + n) * SUM_W +: SUM_W] = {SUM_W{1'b0}};
                end
            end
            for (n = 0; n < LEAVES - 1; n = n + 1) begin : g_node
                assign node[n * SUM_W +: SUM_W] =
                    node[(2 * n + 1) * SUM_W +: SUM_W] + node[(2 * n + 2) * SUM_W +: SUM_W];
            end
            always @(posedge clk) begin
                if (fire) begin
                    s3_sum[pe * SUM_W +: SUM_W] <= node[0 +: SUM_W];
                end
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            s3_add <= 1'b0;
            s3_emit <= 1'b0;
        end else if (fire) begin
            s3_add <= s2_add;
            s3_emit <= s2_emit;
        end
    end

    always @(posedge clk) begin
        if (fire) begin
            s3_fresh <= s2_fresh;
        end
    end

    // ------------------------------------------------------------------ stage 3: accumulate, emit
    reg [PE*ACC_BITS-1:0] acc;
    generate
        for (pe = 0; pe < PE; pe = pe + 1) begin : g_acc
            wire signed [ACC_BITS-1:0] init;
            wire signed [ACC_BITS-1:0] value;   // the fold's accumulator so far
            wire signed [SUM_W-1:0] sum = s3_sum[pe * SUM_W +: SUM_W];
            if (CLASSIFIER != 0) begin : g_bias
                assign init = s3_param[pe * ACC_BITS +: ACC_BITS];
                assign out_data[pe * ACC_BITS +: ACC_BITS] = value;
            end else begin : g_threshold
                assign init = {ACC_BITS{1'b0}};
                genvar k;
                for (k = 0; k < T_OUT; k = k + 1) begin : g_frame
                    wire signed [ACC_BITS-1:0] th = s3_param[(pe * T_OUT + k) * ACC_BITS +: ACC_BITS];
                    assign out_data[pe * T_OUT + k] = value >= th;
                end
            end
            assign value = s3_fresh ? init : acc[pe * ACC_BITS +: ACC_BITS];
            always @(posedge clk) begin
                if (fire && s3_add) begin
                    acc[pe * ACC_BITS +: ACC_BITS] <= value + ACC_BITS'(sum);
                end
            end
        end
    endgenerate

endmodule

`default_nettype wire
