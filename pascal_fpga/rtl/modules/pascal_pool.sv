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
 *  global stall: with rd = the slot reads, wr = pend,
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
 * @param OUT_H   output rows = (IN_H - K) / STRIDE + 1
 * @param OUT_W   output columns = (IN_W - K) / STRIDE + 1
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
    parameter integer CH     = 2,
    parameter integer IN_H   = 4,
    parameter integer IN_W   = 4,
    parameter integer OUT_H  = 2,
    parameter integer OUT_W  = 2,
    parameter integer K      = 2,
    parameter integer STRIDE = 2,
    parameter integer T      = 1,
    parameter integer FB_IN  = 1,
    parameter integer FB_OUT = 1,
    parameter integer PE     = 1,
    parameter integer SUM    = 0
) (
    input  wire                        clk,
    input  wire                        rst,
    input  wire [PE*T*FB_IN-1:0]       in_data,
    input  wire                        in_valid,
    output wire                        in_ready,
    output wire [PE*T*FB_OUT-1:0]      out_data,
    output wire                        out_valid,
    input  wire                        out_ready
);
    localparam integer CF  = CH / PE;                  // words per pixel
    localparam integer IW  = PE * T * FB_IN;           // input word width
    localparam integer OW  = PE * T * FB_OUT;          // output word width
    localparam integer NB  = K * K;                    // banks
    localparam integer D   = ((IN_W + K - 1) / K) * CF;  // words per bank
    localparam integer DAW = (D > 1) ? $clog2(D) : 1;
    localparam integer CFB = (CF > 1) ? $clog2(CF) : 1;
    localparam integer XB  = (IN_W > 1) ? $clog2(IN_W) : 1;
    localparam integer OXB = (OUT_W > 1) ? $clog2(OUT_W) : 1;
    localparam integer KB  = (K > 1) ? $clog2(K) : 1;
    localparam integer HB  = $clog2(IN_H + 1);         // 0..IN_H
    localparam integer OYB = $clog2(OUT_H + 1);        // 0..OUT_H

    localparam [CFB-1:0] CF_LAST   = CFB'(CF - 1);
    localparam [XB-1:0]  X_LAST    = XB'(IN_W - 1);
    localparam [OXB-1:0] OX_LAST   = OXB'(OUT_W - 1);
    localparam [OYB-1:0] OY_LAST   = OYB'(OUT_H - 1);
    localparam [OYB-1:0] OY_DONE   = OYB'(OUT_H);
    localparam [HB-1:0]  H_ALL     = HB'(IN_H);
    localparam [HB-1:0]  H_LAST    = HB'(IN_H - 1);
    localparam [HB-1:0]  NEED0     = HB'(K);
    localparam [HB-1:0]  H_STEP    = HB'(STRIDE);       // used only if OUT_H > 1
    localparam [DAW-1:0] A_CF      = DAW'(CF);
    localparam [DAW-1:0] A_STEP    = DAW'((STRIDE / K) * CF);  // used only if OUT_W > 1
    localparam [KB:0]    R_STEP    = (KB + 1)'(STRIDE % K);
    localparam [KB:0]    R_K       = (KB + 1)'(K);
    localparam [K-1:0]   K_ONE     = K'(1);             // one-hot position 0

    //-------------------------------------------------------------------------
    // Phases of an image: its slots, P = 1 drain slot, 2 idle cycles.
    localparam [1:0] PH_RUN = 2'd0, PH_DRAIN = 2'd1, PH_GAP0 = 2'd2, PH_GAP1 = 2'd3;
    reg [1:0] phase;
    reg       pend;        // a W slot's word waits in the read registers

    // schedule state (HLS names)
    reg           reading;     // the current slot is an R slot
    reg [HB-1:0]  rows_read;
    reg [HB-1:0]  need;
    reg [OYB-1:0] oy;
    // read side: position of the next input word
    reg [CFB-1:0] c;
    reg [XB-1:0]  x;
    reg [K-1:0]   xcol;        // one-hot x % K
    reg [DAW-1:0] wbase;       // (x / K) * CF
    reg [K-1:0]   row;         // one-hot rows_read % K
    // write side: the window and group of the next W slot
    reg [CFB-1:0] cf;
    reg [OXB-1:0] ox;
    reg [KB-1:0]  rb;          // (ox*STRIDE) % K
    reg [DAW-1:0] rbase;       // ((ox*STRIDE) / K) * CF

    wire run   = (phase == PH_RUN);
    wire rd    = run && reading;
    wire wslot = run && !reading;
    wire wr    = pend;
    wire fire  = (!rd || in_valid) && (!wr || out_ready);

    assign in_ready  = rd && (!wr || out_ready);
    assign out_valid = wr && (!rd || in_valid);

    wire c_last   = (c == CF_LAST);
    wire x_last   = (x == X_LAST);
    wire cf_last  = (cf == CF_LAST);
    wire ox_last  = (ox == OX_LAST);
    wire row_done = c_last && x_last;                       // last word of a row
    wire [HB-1:0] rows_inc = rows_read + 1'b1;
    wire last_r   = row_done && (rows_read == H_LAST) && (oy == OY_DONE);
    wire last_w   = cf_last && ox_last && (oy == OY_LAST) && (rows_read == H_ALL);
    wire last     = reading ? last_r : last_w;              // the image's last slot

    wire [HB-1:0] need_next = (oy == OY_LAST) ? H_ALL : need + H_STEP;
    wire [KB:0]   rb_sum    = {1'b0, rb} + R_STEP;
    wire          rb_wrap   = (rb_sum >= R_K);
    /* verilator lint_off UNUSEDSIGNAL */
    wire [KB:0]   rb_mod    = rb_wrap ? rb_sum - R_K : rb_sum;   // < K: the MSB is 0
    /* verilator lint_on UNUSEDSIGNAL */

    always @(posedge clk) begin
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

    always @(posedge clk) begin
        if (rst || (fire && run && last)) begin
            reading   <= 1'b1;
            rows_read <= {HB{1'b0}};
            need      <= NEED0;
            oy        <= {OYB{1'b0}};
            c         <= {CFB{1'b0}};
            x         <= {XB{1'b0}};
            xcol      <= K_ONE;
            wbase     <= {DAW{1'b0}};
            row       <= K_ONE;
            cf        <= {CFB{1'b0}};
            ox        <= {OXB{1'b0}};
            rb        <= {KB{1'b0}};
            rbase     <= {DAW{1'b0}};
        end else if (fire && run) begin
            if (reading) begin
                if (!c_last) begin
                    c <= c + 1'b1;
                end else begin
                    c <= {CFB{1'b0}};
                    if (!x_last) begin
                        x    <= x + 1'b1;
                        xcol <= (xcol << 1) | (xcol >> (K - 1));
                        if (xcol[K-1]) wbase <= wbase + A_CF;
                    end else begin
                        x         <= {XB{1'b0}};
                        xcol      <= K_ONE;
                        wbase     <= {DAW{1'b0}};
                        row       <= (row << 1) | (row >> (K - 1));
                        rows_read <= rows_inc;
                        if (rows_inc == need) reading <= 1'b0;
                    end
                end
            end else begin
                if (!cf_last) begin
                    cf <= cf + 1'b1;
                end else begin
                    cf <= {CFB{1'b0}};
                    if (!ox_last) begin
                        ox    <= ox + 1'b1;
                        rb    <= rb_mod[KB-1:0];
                        rbase <= rbase + A_STEP + (rb_wrap ? A_CF : {DAW{1'b0}});
                    end else begin
                        ox      <= {OXB{1'b0}};
                        rb      <= {KB{1'b0}};
                        rbase   <= {DAW{1'b0}};
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
    wire           wen   = fire && rd;
    wire           ren   = fire && wslot;
    wire [DAW-1:0] waddr = wbase + DAW'(c);
    wire [DAW-1:0] raddr_lo = rbase + DAW'(cf);             // columns b >= rb
    /* verilator lint_off UNUSEDSIGNAL */
    wire [DAW-1:0] raddr_hi = rbase + A_CF + DAW'(cf);      // columns b <  rb (none if K = 1)
    /* verilator lint_on UNUSEDSIGNAL */
    wire [NB*IW-1:0] taps;

    genvar gr, gb;
    generate
        for (gb = 0; gb < K; gb = gb + 1) begin : g_col
            wire [DAW-1:0] raddr;
            if (gb == K - 1) begin : g_last
                assign raddr = raddr_lo;                    // rb <= K-1 always
            end else begin : g_any
                localparam [KB-1:0] B = KB'(gb);
                assign raddr = (B < rb) ? raddr_hi : raddr_lo;
            end
            for (gr = 0; gr < K; gr = gr + 1) begin : g_row
                reg [IW-1:0] mem [0:D-1];
                reg [IW-1:0] q;
                always @(posedge clk) begin
                    if (wen && row[gr] && xcol[gb]) mem[waddr] <= in_data;
                end
                always @(posedge clk) begin
                    if (ren) q <= mem[raddr];
                end
                assign taps[(gr * K + gb) * IW +: IW] = q;
            end
        end
    endgenerate

    //-------------------------------------------------------------------------
    // Combine the K*K taps frame by frame
    reg [OW-1:0]     comb;
    reg [FB_OUT-1:0] part;
    reg [FB_OUT-1:0] v;
    integer e, b;
    always @* begin
        comb = {OW{1'b0}};
        for (e = 0; e < PE * T; e = e + 1) begin
            part = {FB_OUT{1'b0}};
            for (b = 0; b < NB; b = b + 1) begin
                v = {FB_OUT{1'b0}};
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
