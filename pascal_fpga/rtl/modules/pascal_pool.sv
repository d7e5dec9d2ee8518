/******************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   Max / sum pooling of a layer stream (K x K windows, no padding).
 *
 * @description
 *  RTL twin of pascal::pool (hls/include/pascal/pool.h). Words of PE channels
 *  x T frames in and out, CF = CH/PE words per pixel, pixels row-major; input
 *  frame (pe, t) at [(pe*T+t)*FB_IN +: FB_IN], output frame at
 *  [(pe*T+t)*FB_OUT +: FB_OUT].
 *   SUM = 0: frame-wise max per channel over the K*K taps (for 1-bit spike
 *            frames an OR); the result is zero-extended to FB_OUT bits
 *            (FB_OUT = FB_IN in the designs).
 *   SUM = 1: frame-wise sum of the K*K taps, modulo 2^FB_OUT.
 *
 *  Schedule per image (pascal_fpga/hls/ARCHITECTURE.md, "pool"), one slot per
 *  cycle, K-row circular line buffer (input row r in buffer row r % K):
 *    for oy in 0..OUT_H-1:
 *      R slots until rows_read = need(oy) = min(oy*STRIDE + K, IN_H), IN_W*CF
 *      per row (one input word each, in stream order);
 *      for ox in 0..OUT_W-1, for cf in 0..CF-1: one W slot combining the K*K
 *      taps of group cf at rows oy*STRIDE+ky, columns ox*STRIDE+kx;
 *    then R slots for the rows not read yet (drain).
 *  That is PoolLayer.rows_needed(): K rows, then STRIDE rows per output row,
 *  then IN_H - ((OUT_H-1)*STRIDE + K) rows. Slots per image:
 *  (IN_H*IN_W + OUT_H*OUT_W)*CF, then P = 1 drain slot, then 2 idle cycles
 *  (LOOP_OVERHEAD), then the next image.
 *
 *  Cycle contract (pascal_fpga/rtl/README.md): write latency P = 1: the word
 *  of a W slot is written in the next slot (pipeline register `pend`);
 *  global stall (pascal_handshake): with rd = the slot reads, wr = pend,
 *  fire = (!rd || in_valid) && (!wr || out_ready), in_ready = rd && (!wr ||
 *  out_ready), out_valid = wr && (!rd || in_valid); nothing (counters, line
 *  buffer, read registers, pend) advances in a cycle without fire. The idle
 *  cycles never stall.
 *
 *  Line buffer: K*K banks; bank (r, b) holds the words of buffer row r at the
 *  columns x = b (mod K), word (x, c) at address (x / K)*CF + c. The K*K taps
 *  of a window lie in K consecutive columns of the K buffer rows, so each bank
 *  holds exactly one tap: a W slot reads every bank once (synchronous read,
 *  registered: this is the P = 1 stage) at the address of its window column
 *  (x / K of the unique x in ox*STRIDE .. ox*STRIDE+K-1 with x % K = b), and
 *  the next cycle combines the K*K registered words (max and sum commute, so
 *  the tap order is immaterial). Banks map to LUTRAM / block RAM.
 *
 * @param CH      channels (PE divides it)
 * @param IN_H    input rows (>= K)
 * @param IN_W    input columns (>= K; 1 is fine)
 * @param OUT_H   output rows = (IN_H - K) / STRIDE + 1 (checked: the windows fit)
 * @param OUT_W   output columns = (IN_W - K) / STRIDE + 1 (likewise)
 * @param K       window size (>= 1)
 * @param STRIDE  window step (>= 1; may differ from K, also exceed it)
 * @param T       frames per channel (>= 1)
 * @param FB_IN   bits per input frame (>= 1)
 * @param FB_OUT  bits per output frame (>= FB_IN)
 * @param PE      channels per word, in and out
 * @param SUM     0: max pooling, 1: sum pooling
 *
 * Ports: clk, rst (synchronous, active high; the first cycle after it is slot
 * 0 of image 0), in_* = PE*T*FB_IN bits, out_* = PE*T*FB_OUT bits.
 *****************************************************************************/
`default_nettype none

module pascal_pool #(
    parameter int CH     = 2,
    parameter int IN_H   = 4,
    parameter int IN_W   = 4,
    parameter int OUT_H  = 2,
    parameter int OUT_W  = 2,
    parameter int K      = 2,
    parameter int STRIDE = 2,
    parameter int T      = 1,
    parameter int FB_IN  = 1,
    parameter int FB_OUT = 1,
    parameter int PE     = 1,
    parameter int SUM    = 0
) (
    input  logic                   clk,
    input  logic                   rst,
    input  logic [PE*T*FB_IN-1:0]  in_data,
    input  logic                   in_valid,
    output logic                   in_ready,
    output logic [PE*T*FB_OUT-1:0] out_data,
    output logic                   out_valid,
    input  logic                   out_ready
);
    //-------------------------------------------------------------------------
    // Parameter checks (elaboration)
    if (CH < 1 || PE < 1 || T < 1 || FB_IN < 1) begin : g_bad_shape
        $error("pascal_pool: CH, PE, T and FB_IN must be >= 1");
    end
    if (CH % PE != 0) begin : g_bad_pe
        $error("pascal_pool: PE must divide CH");
    end
    if (FB_OUT < FB_IN) begin : g_bad_fb_out
        $error("pascal_pool: FB_OUT must be >= FB_IN");
    end
    if (K < 1 || STRIDE < 1 || IN_H < K || IN_W < K) begin : g_bad_window
        $error("pascal_pool: K and STRIDE must be >= 1, IN_H and IN_W >= K");
    end
    if (OUT_H < 1 || OUT_W < 1 || (OUT_H - 1) * STRIDE + K > IN_H ||
        (OUT_W - 1) * STRIDE + K > IN_W) begin : g_bad_out
        $error("pascal_pool: OUT_H x OUT_W windows must fit the IN_H x IN_W map");
    end
    if (SUM != 0 && SUM != 1) begin : g_bad_sum
        $error("pascal_pool: SUM must be 0 or 1");
    end

    localparam int CF  = CH / PE;                    // words per pixel
    localparam int IW  = PE * T * FB_IN;             // input word width
    localparam int OW  = PE * T * FB_OUT;            // output word width
    localparam int NB  = K * K;                      // banks
    localparam int D   = ((IN_W + K - 1) / K) * CF;  // words per bank
    localparam int DAW = (D > 1) ? $clog2(D) : 1;
    localparam int CFB = (CF > 1) ? $clog2(CF) : 1;
    localparam int XB  = (IN_W > 1) ? $clog2(IN_W) : 1;
    localparam int OXB = (OUT_W > 1) ? $clog2(OUT_W) : 1;
    localparam int KB  = (K > 1) ? $clog2(K) : 1;
    localparam int HB  = $clog2(IN_H + 1);           // 0..IN_H
    localparam int OYB = $clog2(OUT_H + 1);          // 0..OUT_H

    localparam logic [CFB-1:0] CF_LAST = CFB'(CF - 1);
    localparam logic [XB-1:0]  X_LAST  = XB'(IN_W - 1);
    localparam logic [OXB-1:0] OX_LAST = OXB'(OUT_W - 1);
    localparam logic [OYB-1:0] OY_LAST = OYB'(OUT_H - 1);
    localparam logic [OYB-1:0] OY_DONE = OYB'(OUT_H);
    localparam logic [HB-1:0]  H_ALL   = HB'(IN_H);
    localparam logic [HB-1:0]  H_LAST  = HB'(IN_H - 1);
    localparam logic [HB-1:0]  NEED0   = HB'(K);
    localparam logic [HB-1:0]  H_STEP  = HB'(STRIDE);                // used only if OUT_H > 1
    localparam logic [DAW-1:0] A_CF    = DAW'(CF);
    localparam logic [DAW-1:0] A_STEP  = DAW'((STRIDE / K) * CF);    // used only if OUT_W > 1
    localparam logic [KB:0]    R_STEP  = (KB + 1)'(STRIDE % K);
    localparam logic [KB:0]    R_K     = (KB + 1)'(K);
    localparam logic [K-1:0]   K_ONE   = K'(1);                      // one-hot position 0

    //-------------------------------------------------------------------------
    // Phases of an image: its slots, P = 1 drain slot, 2 idle cycles.
    localparam logic [1:0] PH_RUN = 2'd0, PH_DRAIN = 2'd1, PH_GAP0 = 2'd2, PH_GAP1 = 2'd3;
    logic [1:0] phase;
    logic       pend;        // a W slot's word waits in the read registers

    // schedule state (HLS names)
    logic           reading;     // the current slot is an R slot
    logic [HB-1:0]  rows_read;
    logic [HB-1:0]  need;
    logic [OYB-1:0] oy;
    // read side: position of the next input word
    logic [CFB-1:0] c;
    logic [XB-1:0]  x;
    logic [K-1:0]   xcol;        // one-hot x % K
    logic [DAW-1:0] wbase;       // (x / K) * CF
    logic [K-1:0]   row;         // one-hot rows_read % K
    // write side: the window and group of the next W slot
    logic [CFB-1:0] cf;
    logic [OXB-1:0] ox;
    logic [KB-1:0]  rb;          // (ox*STRIDE) % K
    logic [DAW-1:0] rbase;       // ((ox*STRIDE) / K) * CF

    logic run, rd, wslot, wr, fire;
    assign run   = (phase == PH_RUN);
    assign rd    = run && reading;
    assign wslot = run && !reading;
    assign wr    = pend;
    pascal_handshake u_handshake (
        .rd(rd), .wr(wr), .in_valid(in_valid), .out_ready(out_ready),
        .fire(fire), .in_ready(in_ready), .out_valid(out_valid));

    logic c_last, x_last, cf_last, ox_last, row_done, last_r, last_w, last;
    logic [HB-1:0] rows_inc;
    assign c_last   = (c == CF_LAST);
    assign x_last   = (x == X_LAST);
    assign cf_last  = (cf == CF_LAST);
    assign ox_last  = (ox == OX_LAST);
    assign row_done = c_last && x_last;                            // last word of a row
    assign rows_inc = rows_read + 1'b1;
    assign last_r   = row_done && (rows_read == H_LAST) && (oy == OY_DONE);
    assign last_w   = cf_last && ox_last && (oy == OY_LAST) && (rows_read == H_ALL);
    assign last     = reading ? last_r : last_w;                   // the image's last slot

    logic [HB-1:0] need_next;
    logic [KB:0]   rb_sum;
    logic          rb_wrap;
    /* verilator lint_off UNUSEDSIGNAL */
    logic [KB:0]   rb_mod;                                         // < K: the MSB is 0
    /* verilator lint_on UNUSEDSIGNAL */
    assign need_next = (oy == OY_LAST) ? H_ALL : need + H_STEP;
    assign rb_sum    = {1'b0, rb} + R_STEP;
    assign rb_wrap   = (rb_sum >= R_K);
    assign rb_mod    = rb_wrap ? rb_sum - R_K : rb_sum;

    always_ff @(posedge clk) begin
        if (rst) begin
            phase <= PH_RUN;
            pend  <= 1'b0;
        end else if (fire) begin
            pend <= wslot;
            case (phase)
                PH_RUN:   if (last) phase <= PH_DRAIN;
                PH_DRAIN: phase <= PH_GAP0;
                PH_GAP0:  phase <= PH_GAP1;
                default:  phase <= PH_RUN;
            endcase
        end
    end

    always_ff @(posedge clk) begin
        if (rst || (fire && run && last)) begin
            reading   <= 1'b1;
            rows_read <= '0;
            need      <= NEED0;
            oy        <= '0;
            c         <= '0;
            x         <= '0;
            xcol      <= K_ONE;
            wbase     <= '0;
            row       <= K_ONE;
            cf        <= '0;
            ox        <= '0;
            rb        <= '0;
            rbase     <= '0;
        end else if (fire && run) begin
            if (reading) begin
                if (!c_last) begin
                    c <= c + 1'b1;
                end else begin
                    c <= '0;
                    if (!x_last) begin
                        x    <= x + 1'b1;
                        xcol <= (xcol << 1) | (xcol >> (K - 1));
                        if (xcol[K-1]) wbase <= wbase + A_CF;
                    end else begin
                        x         <= '0;
                        xcol      <= K_ONE;
                        wbase     <= '0;
                        row       <= (row << 1) | (row >> (K - 1));
                        rows_read <= rows_inc;
                        if (rows_inc == need) reading <= 1'b0;
                    end
                end
            end else begin
                if (!cf_last) begin
                    cf <= cf + 1'b1;
                end else begin
                    cf <= '0;
                    if (!ox_last) begin
                        ox    <= ox + 1'b1;
                        rb    <= rb_mod[KB-1:0];
                        rbase <= rbase + A_STEP + (rb_wrap ? A_CF : '0);
                    end else begin
                        ox      <= '0;
                        rb      <= '0;
                        rbase   <= '0;
                        oy      <= oy + 1'b1;
                        need    <= need_next;
                        reading <= (rows_read < need_next);
                    end
                end
            end
        end
    end

    //-------------------------------------------------------------------------
    // Line buffer banks
    logic           wen, ren;
    logic [DAW-1:0] waddr, raddr_lo;
    /* verilator lint_off UNUSEDSIGNAL */
    logic [DAW-1:0] raddr_hi;                                      // none if K = 1
    /* verilator lint_on UNUSEDSIGNAL */
    assign wen      = fire && rd;
    assign ren      = fire && wslot;
    assign waddr    = wbase + DAW'(c);
    assign raddr_lo = rbase + DAW'(cf);                            // columns b >= rb
    assign raddr_hi = rbase + A_CF + DAW'(cf);                     // columns b <  rb
    logic [NB*IW-1:0] taps;

    genvar gr, gb;
    for (gb = 0; gb < K; gb = gb + 1) begin : g_col
        logic [DAW-1:0] raddr;
        if (gb == K - 1) begin : g_last
            assign raddr = raddr_lo;                               // rb <= K-1 always
        end else begin : g_any
            localparam logic [KB-1:0] B = KB'(gb);
            assign raddr = (B < rb) ? raddr_hi : raddr_lo;
        end
        for (gr = 0; gr < K; gr = gr + 1) begin : g_row
            logic [IW-1:0] mem [0:D-1];
            logic [IW-1:0] q;
            always_ff @(posedge clk) begin
                if (wen && row[gr] && xcol[gb]) mem[waddr] <= in_data;
            end
            always_ff @(posedge clk) begin
                if (ren) q <= mem[raddr];
            end
            assign taps[(gr * K + gb) * IW +: IW] = q;
        end
    end

    //-------------------------------------------------------------------------
    // Combine the K*K taps frame by frame
    logic [OW-1:0] comb;
    always_comb begin
        logic [FB_OUT-1:0] part;
        logic [FB_OUT-1:0] v;
        comb = '0;
        for (int e = 0; e < PE * T; e++) begin
            part = '0;
            for (int b = 0; b < NB; b++) begin
                v = '0;
                v[FB_IN-1:0] = taps[b * IW + e * FB_IN +: FB_IN];
                if (SUM != 0) part = part + v;
                else if (v > part) part = v;
            end
            comb[e * FB_OUT +: FB_OUT] = part;
        end
    end

    assign out_data = comb;

endmodule

`default_nettype wire
