/******************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   Residual add + QCFS emitter of a residual block: the main path's
 *          accumulators plus the shortcut, each scaled by a power of two per
 *          channel, thresholded into T_OUT spike frames.
 *
 * @description
 *  Two input streams, main_* (the block's last MVU, CLASSIFIER = 1: PE
 *  accumulators) and short_* (the shortcut: the block's input spikes, or a
 *  projection MVU's accumulators), one output stream of spikes. NF = CH/PE
 *  words per pixel on every stream, pixels in stream order, word k of an image
 *  carries channels nf*PE .. nf*PE+PE-1 with nf = k % NF.
 *
 *  Words (bit 0 = LSB):
 *   main    PE accumulators of ACC_BITS bits, two's complement, lane pe at
 *           [pe*ACC_BITS +: ACC_BITS]                                -> acc
 *   short   SC_ACC = 0 (identity shortcut): PE channels x T_SC frames x
 *           FB_SC bits (unsigned), channel g frame t at
 *           [(g*T_SC + t)*FB_SC +: FB_SC]; v = the sum of the channel's frames.
 *           SC_ACC = 1 (projection shortcut): PE accumulators of SC_BITS bits,
 *           two's complement, lane pe at [pe*SC_BITS +: SC_BITS]; v = it.
 *   out     PE channels x T_OUT frames x 1 bit, channel g frame t at bit
 *           g*T_OUT + t.
 *  Channel o = nf*PE + pe of word k:
 *     n = (acc <<< shift_main[o]) + (v <<< shift_short[o])
 *  computed modulo 2^N_BITS (acc and v sign-extended, or truncated, to N_BITS
 *  bits; a shift by N_BITS or more gives 0), read as N_BITS-bit two's
 *  complement; output frame t fires iff n >= thresholds[o][t] (signed; the
 *  thresholds of a channel ascend, each frame is compared on its own).
 *
 *  Schedule per image, one slot per cycle: OUT_PIXELS*NF slots, slot k reads
 *  main word k AND short word k (a read needs both: either input alone never
 *  transfers) and produces output word k, written P = 2 slots later; then 2
 *  drain slots (only the delayed writes), then 2 idle cycles (LOOP_OVERHEAD),
 *  then the next image. In the slot programs of pascal_fpga.hw.schedule: per
 *  image one READ_WRITE run of OUT_PIXELS*NF slots, delayed by P = 2.
 *
 *  Cycle contract (pascal_fpga/rtl/README.md, pascal_handshake) with two
 *  inputs: in_valid of the contract is main_valid && short_valid. rd = a slot of the image, wr =
 *  stage 2 holds a word:
 *    fire        = (!rd || (main_valid && short_valid)) && (!wr || out_ready)
 *    main_ready  = rd && short_valid && (!wr || out_ready)
 *    short_ready = rd && main_valid  && (!wr || out_ready)
 *    out_valid   = wr && (!rd || (main_valid && short_valid))
 *  so both inputs transfer in exactly the cycles with fire && rd. Nothing
 *  (slot counters, pipeline registers, ROM read registers) advances without
 *  fire; the idle cycles never stall.
 *
 *  Pipeline (3 stages, one global enable `fire`):
 *   stage 0 (slot s):  registers the main lanes and v (the identity
 *                      shortcut's frames summed here); shift ROM read of the
 *                      slot's fold nf (registered read).
 *   stage 1 (s + 1):   n = (acc << shift_main) + (v << shift_short) per lane
 *                      (barrel shifters + one N_BITS adder), registered;
 *                      threshold ROM read of the item's fold.
 *   stage 2 (s + 2):   out_data = the T_OUT signed compares of the registered
 *                      n against the registered thresholds (out_valid).
 *
 * @param CH          channels (PE divides it)
 * @param OUT_PIXELS  pixels per image (OUT_H*OUT_W, >= 1)
 * @param PE          channels per word, on every stream (>= 1)
 * @param ACC_BITS    bits of a main accumulator (>= 1)
 * @param SC_ACC      0: identity shortcut (spike frames), 1: projection
 *                    shortcut (accumulators)
 * @param T_SC        frames per shortcut channel (SC_ACC = 0; >= 1)
 * @param FB_SC       bits per shortcut frame (SC_ACC = 0; >= 1)
 * @param SC_BITS     bits of a shortcut accumulator (SC_ACC = 1; >= 1)
 * @param N_BITS      bits of n and of the thresholds (>= 1)
 * @param T_OUT       output frames per channel (>= 1)
 * @param SH_BITS     bits of a shift amount (unsigned, >= 1)
 * @param OUT_BINARY  0: T_OUT spike frames per channel out (the SNN); 1: each
 *                    channel's level in binary, OB = bits(T_OUT) bits, the
 *                    count of thresholds n reaches (the QNN twin)
 * @param THRESH_FILE $readmemh file of NF lines: line nf holds the thresholds
 *                    of channels nf*PE + pe, (pe, t) at
 *                    [(pe*T_OUT + t)*N_BITS +: N_BITS] (two's complement) of
 *                    a PE*T_OUT*N_BITS-bit word
 * @param SHIFT_FILE  $readmemh file of NF lines: line nf holds, for lane pe,
 *                    shift_main at [(2*pe)*SH_BITS +: SH_BITS] and
 *                    shift_short at [(2*pe+1)*SH_BITS +: SH_BITS] of a
 *                    PE*2*SH_BITS-bit word
 *  (pascal_fpga.hw.rtl_residual.add_memories writes both files' lines.)
 *
 * Ports: clk, rst (synchronous, active high; the first cycle after it is slot
 * 0 of image 0), main_* = PE*ACC_BITS bits, short_* = PE*T_SC*FB_SC bits
 * (SC_ACC = 0) or PE*SC_BITS bits (SC_ACC = 1), out_* = PE*T_OUT bits (PE*OB
 * bits when OUT_BINARY = 1: channel pe's level at [pe*OB +: OB]).
 *****************************************************************************/
`default_nettype none

module pascal_add #(
    parameter int CH         = 2,
    parameter int OUT_PIXELS = 1,
    parameter int PE         = 1,
    parameter int ACC_BITS   = 8,
    parameter int SC_ACC     = 0,
    parameter int T_SC       = 1,
    parameter int FB_SC      = 1,
    parameter int SC_BITS    = 8,
    parameter int N_BITS     = 10,
    parameter int T_OUT      = 1,
    parameter int SH_BITS    = 2,
    parameter THRESH_FILE = "",
    parameter SHIFT_FILE = "",
    parameter int OUT_BINARY = 0,

    // derived widths (not to be overridden)
    localparam int MAIN_W = PE * ACC_BITS,
    localparam int SC_W   = SC_ACC != 0 ? PE * SC_BITS : PE * T_SC * FB_SC,
    localparam int OB     = $clog2(T_OUT + 1),                // bits(T_OUT): a binary level
    localparam int OUT_W  = OUT_BINARY != 0 ? PE * OB : PE * T_OUT
) (
    input  logic              clk,
    input  logic              rst,
    input  logic [MAIN_W-1:0] main_data,
    input  logic              main_valid,
    output logic              main_ready,
    input  logic [SC_W-1:0]   short_data,
    input  logic              short_valid,
    output logic              short_ready,
    output logic [OUT_W-1:0]  out_data,
    output logic              out_valid,
    input  logic              out_ready
);
    // ------------------------------------------------------------------ parameter checks
    if (CH < 1 || PE < 1 || OUT_PIXELS < 1) begin : g_bad_shape
        $error("pascal_add: CH, PE and OUT_PIXELS must be >= 1");
    end
    if (CH % PE != 0) begin : g_bad_pe
        $error("pascal_add: PE must divide CH");
    end
    if (ACC_BITS < 1 || N_BITS < 1 || T_OUT < 1 || SH_BITS < 1) begin : g_bad_widths
        $error("pascal_add: ACC_BITS, N_BITS, T_OUT and SH_BITS must be >= 1");
    end
    if (SC_ACC != 0 && SC_ACC != 1) begin : g_bad_sc_acc
        $error("pascal_add: SC_ACC must be 0 or 1");
    end
    if (T_SC < 1 || FB_SC < 1 || SC_BITS < 1) begin : g_bad_shortcut
        $error("pascal_add: T_SC, FB_SC and SC_BITS must be >= 1");
    end

    // ------------------------------------------------------------------ widths
    localparam int NF   = CH / PE;
    localparam int AW   = NF > 1 ? $clog2(NF) : 1;             // ROM address = fold
    localparam int PXW  = OUT_PIXELS > 1 ? $clog2(OUT_PIXELS) : 1;
    // v: the identity shortcut's frame sum (unsigned, exact) or the projection's accumulator
    localparam int SUM_W = FB_SC + $clog2(T_SC);
    localparam int V_W   = SC_ACC != 0 ? SC_BITS : SUM_W;
    localparam int SH_W  = PE * 2 * SH_BITS;                   // shift ROM word
    localparam int TH_W  = PE * T_OUT * N_BITS;                // threshold ROM word
    localparam int ROM_LUT_DEPTH = 64;                         // deeper ROMs: block RAM

    localparam logic [AW-1:0]  NF_LAST = AW'(NF - 1);
    localparam logic [PXW-1:0] PX_LAST = PXW'(OUT_PIXELS - 1);

    // ------------------------------------------------------------------ handshake
    logic [2:0] tail;     // 0 = the image's slots, 1..2 = drain slots, 3..4 = idle cycles
    logic       s1_pend;  // stage 1 holds an item (a word to be written)
    logic       s2_pend;  // stage 2 holds a word: a write is due
    logic       busy, rd, wr, in_both, in_take, fire;
    assign busy    = tail == 3'd0;
    assign rd      = busy;
    assign wr      = s2_pend;
    assign in_both = main_valid && short_valid;
    // the global stall, both inputs as one (a read takes a word from both or neither)
    pascal_handshake u_handshake (
        .rd(rd), .wr(wr), .in_valid(in_both), .out_ready(out_ready),
        .fire(fire), .in_ready(in_take), .out_valid(out_valid));

    assign main_ready  = in_take && short_valid;
    assign short_ready = in_take && main_valid;

    // ------------------------------------------------------------------ stage 0: slot sequencer
    logic [AW-1:0]  nf;
    logic [PXW-1:0] px;
    logic           last_slot;
    assign last_slot = (nf == NF_LAST) && (px == PX_LAST);

    always_ff @(posedge clk) begin
        if (rst) begin
            tail <= 3'd0;
            nf   <= '0;
            px   <= '0;
        end else if (fire) begin
            if (busy) begin
                if (nf == NF_LAST) begin
                    nf <= '0;
                    px <= (px == PX_LAST) ? '0 : px + 1'b1;
                end else begin
                    nf <= nf + 1'b1;
                end
                if (last_slot) tail <= 3'd1;
            end else begin
                tail <= (tail == 3'd4) ? 3'd0 : tail + 3'd1;
            end
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            s1_pend <= 1'b0;
            s2_pend <= 1'b0;
        end else if (fire) begin
            s1_pend <= busy;
            s2_pend <= s1_pend;
        end
    end

    // ------------------------------------------------------------------ stage 0 -> 1
    logic [MAIN_W-1:0] s1_main;
    logic [PE*V_W-1:0] s1_v;
    logic [AW-1:0]     s1_nf;
    logic [PE*V_W-1:0] v_in;
    logic [SH_W-1:0]   s1_shift;   // the shift ROM's registered read

    genvar pe, t;
    if (SC_ACC != 0) begin : g_projection
        assign v_in = short_data;
    end else begin : g_identity
        // per channel its T_SC frames, summed (a chain of small adders)
        always_comb begin
            logic [SUM_W-1:0] sum;
            for (int g = 0; g < PE; g++) begin
                sum = '0;
                for (int i = 0; i < T_SC; i++)
                    sum = sum + SUM_W'(short_data[(g * T_SC + i) * FB_SC +: FB_SC]);
                v_in[g * V_W +: V_W] = sum;
            end
        end
    end

    always_ff @(posedge clk) begin
        if (fire) begin
            s1_main <= main_data;
            s1_v    <= v_in;
            s1_nf   <= nf;
        end
    end

    pascal_rom #(.WIDTH(SH_W), .DEPTH(NF), .AW(AW), .FILE(SHIFT_FILE),
                 .LUT_DEPTH(ROM_LUT_DEPTH)) shift_rom (
        .clk(clk), .en(fire), .addr(nf), .q(s1_shift));

    // ------------------------------------------------------------------ stage 1 -> 2
    logic [PE*N_BITS-1:0] s2_n;
    logic [PE*N_BITS-1:0] n_all;      // n of every lane
    logic [TH_W-1:0]      s2_th;      // the threshold ROM's registered read

    pascal_rom #(.WIDTH(TH_W), .DEPTH(NF), .AW(AW), .FILE(THRESH_FILE),
                 .LUT_DEPTH(ROM_LUT_DEPTH)) thresh_rom (
        .clk(clk), .en(fire), .addr(s1_nf), .q(s2_th));

    for (pe = 0; pe < PE; pe = pe + 1) begin : g_lane
        // acc and v as N_BITS two's complement (sign-/zero-extended or truncated: n is
        // computed modulo 2^N_BITS, so the dropped high bits never matter)
        logic [N_BITS-1:0] a;
        logic [N_BITS-1:0] b;
        /* verilator lint_off UNUSEDSIGNAL */
        logic [ACC_BITS-1:0] acc;
        logic [V_W-1:0]      v;
        /* verilator lint_on UNUSEDSIGNAL */
        assign acc = s1_main[pe * ACC_BITS +: ACC_BITS];
        assign v   = s1_v[pe * V_W +: V_W];
        if (ACC_BITS >= N_BITS) begin : g_acc_cut
            assign a = acc[N_BITS-1:0];
        end else begin : g_acc_ext
            assign a = {{(N_BITS - ACC_BITS){acc[ACC_BITS-1]}}, acc};
        end
        if (V_W >= N_BITS) begin : g_v_cut
            assign b = v[N_BITS-1:0];
        end else if (SC_ACC != 0) begin : g_v_sext
            assign b = {{(N_BITS - V_W){v[V_W-1]}}, v};
        end else begin : g_v_zext
            assign b = {{(N_BITS - V_W){1'b0}}, v};
        end
        logic [SH_BITS-1:0] sh_main, sh_short;
        assign sh_main  = s1_shift[(2 * pe) * SH_BITS +: SH_BITS];
        assign sh_short = s1_shift[(2 * pe + 1) * SH_BITS +: SH_BITS];
        assign n_all[pe * N_BITS +: N_BITS] = (a << sh_main) + (b << sh_short);

        // ---------------------------------------------------------- stage 2: compare
        logic signed [N_BITS-1:0] value;
        assign value = s2_n[pe * N_BITS +: N_BITS];
        logic [T_OUT-1:0] fires;   // fires[t] = value >= threshold t
        for (t = 0; t < T_OUT; t = t + 1) begin : g_frame
            logic signed [N_BITS-1:0] th;
            assign th = s2_th[(pe * T_OUT + t) * N_BITS +: N_BITS];
            assign fires[t] = value >= th;
        end
        if (OUT_BINARY != 0) begin : g_count
            logic [OB-1:0] count;  // the level: how many thresholds n reaches
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

    always_ff @(posedge clk) begin
        if (fire) begin
            s2_n <= n_all;
        end
    end

endmodule

`default_nettype wire
