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
 *   OUT_BINARY  threshold emitter: 0 = thermometer frames out (the SNN), 1 = each
 *               channel's level in binary, OB = bits(T_OUT) bits: how many of its
 *               T_OUT thresholds the accumulator reaches (the QNN twin)
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
 *             or, OUT_BINARY = 1, PE*OB bits (channel pe's count of those bits at
 *             [pe*OB +: OB])
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
 *   fire = (!rd || in_valid) && (!wr || out_ready) (pascal_handshake): rd = stage 0
 *   is an R slot, wr = stage 3 holds an emission. Nothing advances unless fire.
 *****************************************************************************/
`default_nettype none

module pascal_mvu #(
    parameter int SIMD = 1,
    parameter int PE = 1,
    parameter int T_IN = 1,
    parameter int FB = 1,
    parameter int SF = 1,
    parameter int NF = 1,
    parameter int WINDOWS = 1,
    parameter int T_OUT = 1,
    parameter int WB = 2,
    parameter int ACC_BITS = 8,
    parameter int CLASSIFIER = 0,
    parameter WEIGHT_FILE = "",
    parameter PARAM_FILE = "",
    parameter int OUT_BINARY = 0,

    // derived widths (not to be overridden)
    localparam int FR_W = SIMD * T_IN * FB,                   // token frames
    localparam int SFB = $clog2((SF > 1 ? SF - 1 : 1) + 1),   // bits(max(SF-1, 1))
    localparam int AB = $clog2(T_IN + 1),                     // bits(T_IN)
    localparam int TOKEN_W = FR_W + SFB + AB + 1,
    localparam int OB = $clog2(T_OUT + 1),                   // bits(T_OUT): a binary level
    localparam int OUT_W = CLASSIFIER != 0 ? PE * ACC_BITS : (OUT_BINARY != 0 ? PE * OB
                                                                              : PE * T_OUT)
) (
    input  logic               clk,
    input  logic               rst,
    input  logic [TOKEN_W-1:0] in_data,
    input  logic               in_valid,
    output logic               in_ready,
    output logic [OUT_W-1:0]   out_data,
    output logic               out_valid,
    input  logic               out_ready
);

    // ------------------------------------------------------------------ parameter checks
    if (SIMD < 1 || PE < 1 || T_IN < 1 || FB < 1) begin : g_bad_lanes
        $error("pascal_mvu: SIMD, PE, T_IN and FB must be >= 1");
    end
    if (SF < 1 || NF < 1 || WINDOWS < 1) begin : g_bad_folds
        $error("pascal_mvu: SF, NF and WINDOWS must be >= 1");
    end
    if (T_OUT < 1 || WB < 1 || ACC_BITS < 1) begin : g_bad_widths
        $error("pascal_mvu: T_OUT, WB and ACC_BITS must be >= 1");
    end
    if (CLASSIFIER != 0 && CLASSIFIER != 1) begin : g_bad_classifier
        $error("pascal_mvu: CLASSIFIER must be 0 or 1");
    end
    if (OUT_BINARY != 0 && OUT_BINARY != 1) begin : g_bad_binary
        $error("pascal_mvu: OUT_BINARY must be 0 or 1");
    end

    // ------------------------------------------------------------------ widths
    localparam int BUF_W = FR_W + SFB + AB;                   // a token without `end`
    localparam int W_W = PE * SIMD * WB;                      // weight ROM word
    localparam int P_W = CLASSIFIER != 0 ? PE * ACC_BITS : PE * T_OUT * ACC_BITS;
    localparam int ROWS = NF * SF;
    localparam int AW = ROWS > 1 ? $clog2(ROWS) : 1;          // weight ROM address
    localparam int PAW = NF > 1 ? $clog2(NF) : 1;             // param ROM address
    localparam int NFW = $clog2(NF + 1);                      // fold counter
    localparam int CW = $clog2(SF + 1);                       // tokens in the buffer
    localparam int BAW = SF > 1 ? $clog2(SF) : 1;             // window buffer address
    localparam int WNW = $clog2(WINDOWS + 1);                 // window counter
    localparam int LW = AB;                                   // frames left of a token
    localparam int PROD_W = WB + FB;                          // weight * frame
    localparam int TREE_W = PROD_W + $clog2(SIMD);            // exact sum of SIMD products
    localparam int SUM_W = TREE_W < ACC_BITS ? TREE_W : ACC_BITS;
    localparam int LEAVES = 1 << $clog2(SIMD);
    localparam int NODES = 2 * LEAVES - 1;
    localparam int ROM_LUT_DEPTH = 64;                        // deeper ROMs: block RAM

    // ------------------------------------------------------------------ handshake
    logic s3_emit;               // stage 3 holds an emission: a write is due
    logic rd;                    // the current slot reads the input
    logic wr, fire;
    assign wr = s3_emit;
    pascal_handshake u_handshake (
        .rd(rd), .wr(wr), .in_valid(in_valid), .out_ready(out_ready),
        .fire(fire), .in_ready(in_ready), .out_valid(out_valid));

    // ------------------------------------------------------------------ stage 0: slot sequencer
    // tail: 0 = the image's HLS slots, 1..3 = drain slots, 4..5 = idle cycles
    logic [2:0]      tail;
    logic [NFW-1:0]  nf;
    logic [AW-1:0]   nf_base;    // nf * SF
    logic [LW-1:0]   left;       // frames of the current token still to add (0: take a token)
    logic [FR_W-1:0] cur_frames; // the current token's frames, shifted: frame 0 = the next one
    logic [SFB-1:0]  cur_sf;
    logic [CW-1:0]   stored;     // tokens of the window in the buffer (fold 0)
    logic [CW-1:0]   replay;     // folds 1..NF-1: the next buffered token
    logic [WNW-1:0]  windows;
    logic            fresh;      // the fold has added nothing yet

    logic [FR_W-1:0] in_frames;
    logic [SFB-1:0]  in_sf;
    logic [AB-1:0]   in_act;
    logic            in_end;
    assign in_frames = in_data[0 +: FR_W];
    assign in_sf     = in_data[FR_W +: SFB];
    assign in_act    = in_data[FR_W + SFB +: AB];
    assign in_end    = in_data[TOKEN_W - 1];

    logic [BUF_W-1:0] buf_q;     // the window buffer's registered read port: entry `replay`
    logic [FR_W-1:0]  rp_frames;
    logic [SFB-1:0]   rp_sf;
    logic [AB-1:0]    rp_act;
    assign rp_frames = buf_q[0 +: FR_W];
    assign rp_sf     = buf_q[FR_W +: SFB];
    assign rp_act    = buf_q[FR_W + SFB +: AB];

    logic busy, c_slot, r_slot, p_slot, take_in, e_slot, add, last_fold, last_window;
    assign busy        = tail == 3'd0;
    assign c_slot      = busy && left != '0;
    assign r_slot      = busy && left == '0 && nf == '0;
    assign p_slot      = busy && left == '0 && nf != '0 && replay != stored;
    assign take_in     = r_slot && !in_end;
    assign e_slot      = (r_slot && in_end) ||
                         (busy && left == '0 && nf != '0 && replay == stored);
    assign add         = c_slot || take_in || p_slot;
    assign last_fold   = nf == NFW'(NF - 1);
    assign last_window = windows == WNW'(WINDOWS - 1);
    assign rd          = r_slot;

    // the token of this slot: frames (frame 0 of each lane is this slot's), sf, active
    logic [FR_W-1:0] src_frames;
    logic [SFB-1:0]  src_sf;
    logic [AB-1:0]   src_act;
    logic [AW-1:0]   w_addr;
    assign src_frames = c_slot ? cur_frames : (r_slot ? in_frames : rp_frames);
    assign src_sf     = c_slot ? cur_sf : (r_slot ? in_sf : rp_sf);
    assign src_act    = r_slot ? in_act : rp_act;
    assign w_addr     = r_slot ? AW'(in_sf) : nf_base + AW'(src_sf);  // fold 0: nf_base = 0

    always_ff @(posedge clk) begin
        if (rst) begin
            tail <= 3'd0;
            nf <= '0;
            nf_base <= '0;
            left <= '0;
            stored <= '0;
            replay <= '0;
            windows <= '0;
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
                    left <= src_act == '0 ? '0 : LW'(src_act - AB'(1));
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
                replay <= '0;
                if (last_fold) begin
                    nf <= '0;
                    nf_base <= '0;
                    stored <= '0;
                    if (last_window) begin
                        windows <= '0;
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
    always_ff @(posedge clk) begin
        if (fire && add) begin
            cur_frames <= src_frames >> FB;
            if (!c_slot) begin
                cur_sf <= src_sf;
            end
        end
    end

    // window buffer: fold 0's tokens, replayed by folds 1..NF-1 (read one slot ahead)
    if (NF > 1) begin : g_buffer
        logic [BUF_W-1:0] mem [0:SF-1];
        logic [BUF_W-1:0] q;
        // replay_next reaches SF (its MSB, SF a power of 2) only after the last replay:
        // that read is never used
        /* verilator lint_off UNUSEDSIGNAL */
        logic [CW-1:0] replay_next;
        /* verilator lint_on UNUSEDSIGNAL */
        assign replay_next = e_slot ? '0 : (p_slot ? replay + CW'(1) : replay);
        always_ff @(posedge clk) begin
            if (fire && take_in) begin
                mem[BAW'(stored)] <= in_data[0 +: BUF_W];
            end
        end
        always_ff @(posedge clk) begin
            if (fire) begin
                q <= mem[BAW'(replay_next)];
            end
        end
        assign buf_q = q;
    end else begin : g_no_buffer
        assign buf_q = '0;
    end

    // ------------------------------------------------------------------ stage 0 -> 1 -> 2
    logic [W_W-1:0]     s1_w;    // the weight ROM's registered read (data register)
    logic [W_W-1:0]     s2_w;    // its output register
    logic [SIMD*FB-1:0] s1_lanes;
    logic               s1_add, s1_emit, s1_fresh;
    logic [PAW-1:0]     s1_nf;

    // weight ROM, synchronous read plus an output register (both enabled by fire: a block
    // RAM's REGMODE = OUTREG / DOA_REG = 1 where the synthesis tool absorbs it, FFs next to
    // it otherwise); block RAM deeper than ROM_LUT_DEPTH words, LUTs up to it (pascal_rom)
    pascal_rom #(.WIDTH(W_W), .DEPTH(ROWS), .AW(AW), .FILE(WEIGHT_FILE),
                 .LUT_DEPTH(ROM_LUT_DEPTH)) weight_rom (
        .clk(clk), .en(fire), .addr(w_addr), .q(s1_w));
    always_ff @(posedge clk) begin
        if (fire) begin
            s2_w <= s1_w;
        end
    end

    // frame 0 of each lane
    logic [SIMD*FB-1:0] lanes;
    always_comb begin
        for (int s = 0; s < SIMD; s++) begin
            lanes[s * FB +: FB] = src_frames[s * T_IN * FB +: FB];
        end
    end

    always_ff @(posedge clk) begin
        if (fire) begin
            s1_lanes <= lanes;
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            s1_add <= 1'b0;
            s1_emit <= 1'b0;
        end else if (fire) begin
            s1_add <= add;
            s1_emit <= e_slot;
        end
    end

    always_ff @(posedge clk) begin
        if (fire) begin
            s1_fresh <= fresh;
            s1_nf <= PAW'(nf);
        end
    end

    // ------------------------------------------------------------------ stage 1 -> 2
    logic [P_W-1:0]     s2_param;    // the param ROM's registered read (data register)
    logic [SIMD*FB-1:0] s2_lanes;
    logic               s2_add, s2_emit, s2_fresh;

    // threshold / bias ROM (one word per fold), synchronous read of the stage-1 item's fold,
    // then an output register (s3_param) like the weight ROM's
    pascal_rom #(.WIDTH(P_W), .DEPTH(NF), .AW(PAW), .FILE(PARAM_FILE),
                 .LUT_DEPTH(ROM_LUT_DEPTH)) param_rom (
        .clk(clk), .en(fire), .addr(s1_nf), .q(s2_param));

    always_ff @(posedge clk) begin
        if (fire) begin
            s2_lanes <= s1_lanes;
            s2_fresh <= s1_fresh;
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            s2_add <= 1'b0;
            s2_emit <= 1'b0;
        end else if (fire) begin
            s2_add <= s1_add;
            s2_emit <= s1_emit;
        end
    end

    // ------------------------------------------------------------------ stage 2 -> 3
    logic [P_W-1:0]      s3_param;   // the param ROM's output register
    logic [PE*SUM_W-1:0] s3_sum;
    logic [PE*SUM_W-1:0] tree_sum;   // the adder trees' roots
    logic                s3_add, s3_fresh;

    always_ff @(posedge clk) begin
        if (fire) begin
            s3_param <= s2_param;
        end
    end

    // per PE: SIMD products weight * frame (the registered weights of the ROM's output
    // register), a balanced adder tree (heap order: node n has the children 2n+1 and 2n+2,
    // the leaves are LEAVES-1 .. 2*LEAVES-2), registered
    genvar pe, n;
    for (pe = 0; pe < PE; pe = pe + 1) begin : g_pe
        // split_var: the nodes are independent wires (no combinational loop); a 1-bit tree
        // (SIMD = 1, ACC_BITS = 1) cannot be split and needs no splitting
        /* verilator lint_off SPLITVAR */
        logic [NODES*SUM_W-1:0] node /* verilator split_var */;
        /* verilator lint_on SPLITVAR */
        for (n = 0; n < LEAVES; n = n + 1) begin : g_leaf
            if (n < SIMD) begin : g_product
                logic signed [WB-1:0] w;
                logic [FB-1:0] f;
                assign w = s2_w[(pe * SIMD + n) * WB +: WB];
                assign f = s2_lanes[n * FB +: FB];
                // ACC_BITS < PROD_W: the products' high bits are dropped (the sums wrap
                // around modulo 2^ACC_BITS like the accumulators)
                /* verilator lint_off UNUSEDSIGNAL */
                logic signed [PROD_W-1:0] p;
                /* verilator lint_on UNUSEDSIGNAL */
                if (FB == 1) begin : g_spike
                    assign p = f[0] ? PROD_W'(w) : '0;
                end else begin : g_count
                    assign p = PROD_W'(w * $signed({1'b0, f}));
                end
                assign node[(LEAVES - 1 + n) * SUM_W +: SUM_W] = SUM_W'(p);
            end else begin : g_pad
                assign node[(LEAVES - 1 + n) * SUM_W +: SUM_W] = '0;
            end
        end
        for (n = 0; n < LEAVES - 1; n = n + 1) begin : g_node
            assign node[n * SUM_W +: SUM_W] =
                node[(2 * n + 1) * SUM_W +: SUM_W] + node[(2 * n + 2) * SUM_W +: SUM_W];
        end
        assign tree_sum[pe * SUM_W +: SUM_W] = node[0 +: SUM_W];
    end

    always_ff @(posedge clk) begin
        if (fire) begin
            s3_sum <= tree_sum;
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            s3_add <= 1'b0;
            s3_emit <= 1'b0;
        end else if (fire) begin
            s3_add <= s2_add;
            s3_emit <= s2_emit;
        end
    end

    always_ff @(posedge clk) begin
        if (fire) begin
            s3_fresh <= s2_fresh;
        end
    end

    // ------------------------------------------------------------------ stage 3: accumulate, emit
    logic [PE*ACC_BITS-1:0] acc;
    logic [PE*ACC_BITS-1:0] acc_next;   // the fold's accumulators plus this item's sums
    for (pe = 0; pe < PE; pe = pe + 1) begin : g_acc
        logic signed [ACC_BITS-1:0] init;
        logic signed [ACC_BITS-1:0] value;   // the fold's accumulator so far
        logic signed [SUM_W-1:0] sum;
        assign sum = s3_sum[pe * SUM_W +: SUM_W];
        if (CLASSIFIER != 0) begin : g_bias
            assign init = s3_param[pe * ACC_BITS +: ACC_BITS];
            assign out_data[pe * ACC_BITS +: ACC_BITS] = value;
        end else begin : g_threshold
            logic [T_OUT-1:0] fires;   // fires[k] = value >= threshold k
            assign init = '0;
            for (genvar k = 0; k < T_OUT; k = k + 1) begin : g_frame
                logic signed [ACC_BITS-1:0] th;
                assign th = s3_param[(pe * T_OUT + k) * ACC_BITS +: ACC_BITS];
                assign fires[k] = value >= th;
            end
            if (OUT_BINARY != 0) begin : g_count
                logic [OB-1:0] count;  // the level: how many thresholds the value reaches
                always_comb begin
                    count = '0;
                    for (int k = 0; k < T_OUT; k = k + 1) begin
                        count = count + OB'(fires[k]);
                    end
                end
                assign out_data[pe * OB +: OB] = count;
            end else begin : g_frames
                assign out_data[pe * T_OUT +: T_OUT] = fires;
            end
        end
        assign value = s3_fresh ? init : acc[pe * ACC_BITS +: ACC_BITS];
        assign acc_next[pe * ACC_BITS +: ACC_BITS] = value + ACC_BITS'(sum);
    end

    always_ff @(posedge clk) begin
        if (fire && s3_add) begin
            acc <= acc_next;
        end
    end

endmodule

`default_nettype wire
