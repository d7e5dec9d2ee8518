/****************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   Sliding-window generator (the convolution's feeder): layer stream
 *          words -> tokens for the matrix-vector unit (pascal_mvu).
 *
 * Parameters
 *   IN_CH      input channels (a multiple of SIMD)
 *   IN_H, IN_W input map height and width (pixels)
 *   OUT_H,     output map height and width: (IN_H + 2*PAD - K)/STRIDE + 1 and
 *   OUT_W      (IN_W + 2*PAD - K)/STRIDE + 1 (checked: the windows fit the
 *              padded map)
 *   K          kernel size (K x K taps)
 *   STRIDE     window stride (any >= 1, also larger than K)
 *   PAD        zero padding on every side (taps outside the image)
 *   T_IN       frames per channel in a word
 *   FB         bits per frame (1: spikes, > 1: multi-bit frames)
 *   SIMD       channels per input word = lanes per token (one group)
 *   ZERO_SKIP  1: event-driven, only groups with activity are sent;
 *              0: dense, all K*K*CF groups are sent with active = T_IN
 *   Derived:   CF = IN_CH/SIMD groups per pixel, SF = K*K*CF groups per
 *              window, FRAMES_W = SIMD*T_IN*FB, SFB = bits(max(SF-1,1)),
 *              AB = bits(T_IN), TOKEN_W = FRAMES_W + SFB + AB + 1.
 *
 * Ports (pascal_fpga/rtl/README.md, common interface)
 *   in_data   [FRAMES_W]  layer word: lane s, frame t at [(s*T_IN+t)*FB +: FB]
 *   out_data  [TOKEN_W]   token: frames [0 +: FRAMES_W], sf [FRAMES_W +: SFB],
 *                         active [FRAMES_W+SFB +: AB], end at the MSB;
 *                         END token: end = 1, everything else 0.
 *
 * Schedule per image (one slot per cycle, pascal_fpga/hls/ARCHITECTURE.md):
 *   for oy in 0..OUT_H-1:
 *     R slots (IN_W*CF each row, row r into buffer row r % K) while
 *       rows_read < need = min(oy*STRIDE - PAD + K, IN_H);
 *     for ox in 0..OUT_W-1:
 *       one W slot per emitted group j = (ky*K + kx)*CF + cf in increasing j
 *       (ZERO_SKIP: groups inside the image with active > 0; dense: all SF),
 *       then one W slot for the END token;
 *   R slots for the rows not read yet (drain);
 *   then 1 drain slot (the write of the last END) and 2 idle cycles.
 * Every token is written one slot after its HLS slot (write latency P = 1):
 * the token's frames come from a synchronous-read line buffer (K rows of
 * IN_W*CF words; in zero-skip mode each entry also stores the group's
 * active), read in the W slot and presented in the next.
 *
 * Zero-skip search: a register bitmap holds one "nonzero" flag per buffered
 * group. The register cur_mask holds the current window's groups not sent yet
 * (rows outside the image masked, columns outside the image read as 0 from a
 * zero-padded view of the flags). It is loaded one slot ahead, off the
 * selection path: the slot before a window's first W slot (the previous
 * window's END, or an R slot, whose own flag write is bypassed into the mask)
 * loads the window's fresh mask; a W slot that sends clears its group. The
 * lowest set bit of cur_mask (per window row a log-depth priority encoder,
 * then the first nonempty row) is the group sent in this slot, its line
 * buffer address = a registered per-row base + the index; an empty mask sends
 * END. So every W slot sends a token, the first one of a window included.
 *
 * Global stall (README cycle contract, pascal_handshake): rd = R slot, wr =
 * a token waits in the output register; fire = (!rd || in_valid) && (!wr ||
 * out_ready); all state (including the line buffer's read register) advances
 * on fire. A group's active comes from pascal_active.
 ***************************************************************************/
`default_nettype none

module pascal_window_gen #(
    parameter int IN_CH     = 2,
    parameter int IN_H      = 5,
    parameter int IN_W      = 5,
    parameter int OUT_H     = 3,
    parameter int OUT_W     = 3,
    parameter int K         = 3,
    parameter int STRIDE    = 1,
    parameter int PAD       = 0,
    parameter int T_IN      = 4,
    parameter int FB        = 1,
    parameter int SIMD      = 1,
    parameter int ZERO_SKIP = 1,
    localparam int CF       = IN_CH / SIMD,
    localparam int SF       = K * K * CF,
    localparam int FRAMES_W = SIMD * T_IN * FB,
    localparam int SFB      = (SF <= 2) ? 1 : $clog2(SF),          // bits(max(SF-1,1))
    localparam int AB       = (T_IN < 2) ? 1 : $clog2(T_IN + 1),   // bits(T_IN)
    localparam int TOKEN_W  = FRAMES_W + SFB + AB + 1
) (
    input  logic                clk,
    input  logic                rst,
    input  logic [FRAMES_W-1:0] in_data,
    input  logic                in_valid,
    output logic                in_ready,
    output logic [TOKEN_W-1:0]  out_data,
    output logic                out_valid,
    input  logic                out_ready
);

    //-----------------------------------------------------------------------
    // Parameter checks (elaboration)
    if (SIMD < 1 || IN_CH < 1 || T_IN < 1 || FB < 1) begin : g_bad_shape
        $error("pascal_window_gen: SIMD, IN_CH, T_IN and FB must be >= 1");
    end
    if (IN_CH % SIMD != 0) begin : g_bad_simd
        $error("pascal_window_gen: SIMD must divide IN_CH");
    end
    if (K < 1 || STRIDE < 1 || PAD < 0 || IN_H < 1 || IN_W < 1) begin : g_bad_window
        $error("pascal_window_gen: K, STRIDE, IN_H and IN_W must be >= 1, PAD >= 0");
    end
    if (OUT_H < 1 || OUT_W < 1 || (OUT_H - 1) * STRIDE + K > IN_H + 2 * PAD ||
        (OUT_W - 1) * STRIDE + K > IN_W + 2 * PAD) begin : g_bad_out
        $error("pascal_window_gen: OUT_H x OUT_W windows must fit the padded input map");
    end
    if (ZERO_SKIP != 0 && ZERO_SKIP != 1) begin : g_bad_zero_skip
        $error("pascal_window_gen: ZERO_SKIP must be 0 or 1");
    end

    //-----------------------------------------------------------------------
    // Derived sizes
    localparam int ROW_WORDS = IN_W * CF;              // words per input row
    localparam int DEPTH     = K * ROW_WORDS;          // line buffer words
    localparam int KCF       = K * CF;                 // groups of one window row
    localparam int PROW      = (IN_W + 2 * PAD) * CF;  // zero-padded row of flags
    localparam int ZS        = (ZERO_SKIP != 0) ? 1 : 0;
    localparam int LB_W      = FRAMES_W + ZS * AB;     // line buffer word: {active, frames}
    localparam int AW        = (DEPTH < 2) ? 1 : $clog2(DEPTH);
    localparam int COLW      = (ROW_WORDS < 2) ? 1 : $clog2(ROW_WORDS);
    localparam int KW        = (K < 2) ? 1 : $clog2(K);
    localparam int CFW       = (CF < 2) ? 1 : $clog2(CF);
    localparam int HW        = (IN_H < 2) ? 1 : $clog2(IN_H + 1);
    localparam int YP_MAX    = OUT_H * STRIDE;         // oy*STRIDE, oy in 0..OUT_H
    localparam int YPW       = (YP_MAX < 2) ? 1 : $clog2(YP_MAX + 1);
    localparam int XP_MAX    = (OUT_W - 1) * STRIDE;   // ox*STRIDE, ox in 0..OUT_W-1
    localparam int XPW       = (XP_MAX < 2) ? 1 : $clog2(XP_MAX + 1);
    // rows needed before output row 0: min(K - PAD, IN_H), at least 0
    localparam int NEED0     = (K <= PAD) ? 0 : ((K - PAD > IN_H) ? IN_H : K - PAD);
    localparam int TOP0      = (K - PAD % K) % K;      // (-PAD) mod K: buffer row of ky = 0
    localparam int STEP_TOP  = STRIDE % K;

    localparam logic [2:0] S_READ  = 3'd0;   // R slots
    localparam logic [2:0] S_WIN   = 3'd1;   // W slots of the current window
    localparam logic [2:0] S_DRAIN = 3'd2;   // the drain slot (P = 1)
    localparam logic [2:0] S_IDLE0 = 3'd3;   // the 2 idle cycles of the image gap
    localparam logic [2:0] S_IDLE1 = 3'd4;
    localparam logic [2:0] S_START = (NEED0 > 0) ? S_READ : S_WIN;

    //-----------------------------------------------------------------------
    // State
    logic [2:0]      state;
    logic            pend;        // a token waits in the output register (wr)
    logic [COLW-1:0] col;         // x*CF + c of the next input word within its row
    logic [AW-1:0]   waddr;       // line buffer address of the next input word
    logic [HW-1:0]   rows_read;
    logic [HW-1:0]   need;        // rows the current output row needs
    logic [YPW-1:0]  yp;          // oy*STRIDE (padded row of ky = 0)
    logic [XPW-1:0]  xp;          // ox*STRIDE (padded column of kx = 0)
    logic [KW-1:0]   top;         // buffer row of ky = 0: (oy*STRIDE - PAD) mod K
    logic            tail;        // oy == OUT_H: draining the rows not read yet

    // output register (the token of the previous slot)
    logic            q_end;
    logic            q_frames;    // the token carries the buffer word read (else frames = 0)
    logic [SFB-1:0]  q_sf;
    /* verilator lint_off UNUSEDSIGNAL */
    logic [AB-1:0]   q_active;    // dense mode: T_IN or 0 (unused in zero-skip mode)
    /* verilator lint_on UNUSEDSIGNAL */
    logic [LB_W-1:0] lb_q;        // line buffer read register

    // line buffer
    logic [LB_W-1:0] lines [0:DEPTH-1];

    //-----------------------------------------------------------------------
    // Handshake: the global stall of the cycle contract
    logic rd, wr, fire;
    assign rd = (state == S_READ);
    assign wr = pend;
    pascal_handshake u_handshake (
        .rd(rd), .wr(wr), .in_valid(in_valid), .out_ready(out_ready),
        .fire(fire), .in_ready(in_ready), .out_valid(out_valid));

    //-----------------------------------------------------------------------
    // The input word's active: 1 + index of the last frame nonzero in any lane
    // (stored in the line buffer in zero-skip mode; unused in dense mode)
    /* verilator lint_off UNUSEDSIGNAL */
    logic [AB-1:0] in_active;
    /* verilator lint_on UNUSEDSIGNAL */
    pascal_active #(.SIMD(SIMD), .T_IN(T_IN), .FB(FB), .AB(AB)) u_active (
        .data(in_data), .active(in_active));

    //-----------------------------------------------------------------------
    // Slot sequencing: the position's next values
    logic row_done, last_x, last_y;
    assign row_done = (32'(col) == ROW_WORDS - 1);
    assign last_x   = (32'(xp) == XP_MAX);
    assign last_y   = (32'(yp) + STRIDE == YP_MAX);   // oy == OUT_H - 1
    // rows the next output row needs (IN_H after the last one: drain)
    logic [HW-1:0] need_next;
    always_comb begin
        int need_next_i;
        need_next_i = 32'(yp) + STRIDE + K - PAD;
        if (need_next_i < 0) need_next_i = 0;
        if (need_next_i > IN_H || last_y) need_next_i = IN_H;
        need_next = HW'(need_next_i);
    end

    logic [KW-1:0] top_next;
    assign top_next = (32'(top) + STEP_TOP >= K) ? KW'(32'(top) + STEP_TOP - K)
                                                 : KW'(32'(top) + STEP_TOP);

    //-----------------------------------------------------------------------
    // Group selection of a W slot: send (else END), its vector index, and the
    // line buffer address of the group (sel_inside: the tap lies in the image)
    logic           send;
    logic [SFB-1:0] sel_sf;
    logic [AW-1:0]  raddr;
    logic           sel_inside;

    if (ZERO_SKIP != 0) begin : g_skip
        // cur_mask: the groups of the current window not sent yet. It is
        // computed one slot ahead: the slot before a window's first W slot
        // (the END of the previous window, or an R slot, whose own line
        // buffer write is bypassed into the flags) loads the next window's
        // fresh mask; a W slot that sends clears the group it sends.
        localparam int IW = (KCF < 2) ? 1 : $clog2(KCF);   // index in a window row
        localparam int NP = 1 << IW;
        logic [DEPTH-1:0] nz;          // nonzero flag of every buffered group
        logic [SF-1:0]    cur_mask;

        // lowest set bit of v: {any, index}, a log-depth tree
        function automatic logic [IW:0] lowest_idx(input logic [NP-1:0] v);
            logic [NP-1:0]    val, nval;
            logic [NP*IW-1:0] ix, nix;
            val = v;
            ix  = '0;
            for (int l = 0; l < IW; l++) begin
                nval = '0;
                nix  = '0;
                for (int n = 0; n < (NP >> (l + 1)); n++) begin
                    nval[n] = val[2 * n] | val[2 * n + 1];
                    nix[n * IW +: IW] = val[2 * n] ? ix[2 * n * IW +: IW]
                                      : (ix[(2 * n + 1) * IW +: IW] | IW'(1 << l));
                end
                val = nval;
                ix  = nix;
            end
            lowest_idx = {val[0], ix[IW-1:0]};
        endfunction

        // The window whose fresh mask is loaded at the end of this slot:
        // R slot: the current one (with this slot's flag write); W slot
        // (used only when it is the END): the next window.
        logic [DEPTH-1:0]     fnz;
        logic [XPW-1:0]       fx;
        logic [YPW-1:0]       fy;
        logic [KW-1:0]        ftop;
        logic [K-1:0]         frow_in;
        logic [SF-1:0]        fmask;
        logic [ROW_WORDS-1:0] row_bits;
        logic [PROW-1:0]      padded;
        logic [KCF-1:0]       win_bits;

        always_comb begin
            int iy, r;
            fnz  = nz;
            fx   = xp;
            fy   = yp;
            ftop = top;
            if (rd) begin
                fnz[waddr] = |in_data;
            end else if (last_x) begin
                fx   = '0;
                fy   = yp + YPW'(STRIDE);
                ftop = top_next;
            end else begin
                fx   = xp + XPW'(STRIDE);
            end
            for (int i = 0; i < K; i++) begin
                iy = 32'(fy) + i - PAD;                      // input row of tap row i
                frow_in[i] = (iy >= 0) && (iy < IN_H);
            end
            for (int i = 0; i < K; i++) begin
                r = 32'(ftop) + i;
                if (r >= K) r = r - K;
                row_bits = '0;
                for (int rr = 0; rr < K; rr++)
                    if (rr == r) row_bits = fnz[rr * ROW_WORDS +: ROW_WORDS];
                padded = '0;
                padded[PAD * CF +: ROW_WORDS] = row_bits;
                win_bits = '0;               // padded[fx*CF +: KCF], a mux (no multiplier)
                for (int xx = 0; xx <= XP_MAX; xx++)
                    if (32'(fx) == xx) win_bits = padded[xx * CF +: KCF];
                fmask[i * KCF +: KCF] = frow_in[i] ? win_bits : '0;
            end
        end

        // Line buffer address of group 0 of each window row (mod 2^AW; only
        // groups inside the image are ever read), registered like cur_mask:
        // loaded for the window whose fresh mask is loaded. colb = (x - PAD)*CF
        // of the window's column x, kept by increments (no multiplier).
        localparam logic [AW-1:0] COLB0 = AW'(-PAD * CF);
        localparam logic [AW-1:0] COLB_STEP = AW'(STRIDE * CF);
        logic [AW-1:0]   colb;               // of the current window
        logic [AW-1:0]   fcolb;              // of the window loaded at the end of the slot
        logic [K*AW-1:0] fbase;
        logic [K*AW-1:0] row_base;           // row i at [i*AW +: AW]
        always_comb begin
            int fr;
            if (rd)          fcolb = colb;
            else if (last_x) fcolb = COLB0;
            else             fcolb = colb + COLB_STEP;
            for (int fi = 0; fi < K; fi++) begin
                fr = 32'(ftop) + fi;
                if (fr >= K) fr = fr - K;
                fbase[fi * AW +: AW] = fcolb;
                for (int frr = 0; frr < K; frr++)
                    if (frr == fr) fbase[fi * AW +: AW] = fcolb + AW'(frr * ROW_WORDS);
            end
        end

        always_ff @(posedge clk) begin
            if (rst) begin
                colb <= COLB0;
            end else if (fire) begin
                if (state == S_WIN) begin
                    if (!send) colb <= fcolb;
                end else if (!rd) begin
                    colb <= COLB0;           // the image gap: the next image's first window
                end
                if (rd || (state == S_WIN && !send))
                    row_base <= fbase;
            end
        end

        // Selection: the first window row with a group left, its lowest group
        logic [IW:0]   enc [0:K-1];
        logic [K-1:0]  first;               // the row is the first with a group left
        logic [SF-1:0] cleared;             // cur_mask without the group sent
        always_comb begin
            logic found;
            for (int si = 0; si < K; si++)
                enc[si] = lowest_idx(NP'(cur_mask[si * KCF +: KCF]));
            found = 1'b0;
            for (int si = 0; si < K; si++) begin
                first[si] = !found && enc[si][IW];
                found     = found | enc[si][IW];
            end
            send    = found;
            sel_sf  = '0;
            raddr   = '0;
            for (int si = 0; si < K; si++) begin
                if (first[si]) begin
                    sel_sf = sel_sf | (SFB'(si * KCF) + SFB'(enc[si][IW-1:0]));
                    raddr  = raddr | (row_base[si * AW +: AW] + AW'(enc[si][IW-1:0]));
                end
                for (int sk = 0; sk < KCF; sk++)
                    cleared[si * KCF + sk] = cur_mask[si * KCF + sk]
                                           & !(first[si] && 32'(enc[si][IW-1:0]) == sk);
            end
            sel_inside = send;               // the mask holds taps inside the image only
        end

        always_ff @(posedge clk) begin
            if (rst) begin
                cur_mask <= '0;
            end else if (fire) begin
                if (rd) nz[waddr] <= |in_data;
                if (state == S_WIN)
                    cur_mask <= send ? cleared : fmask;
                else if (rd)
                    cur_mask <= fmask;
                else
                    cur_mask <= '0;          // image start (all rows outside if no R slot)
            end
        end
    end else begin : g_dense
        logic [SFB-1:0] dj;            // the window's next group: j, (ky, kx, cf)
        logic [KW-1:0]  dky, dkx;
        logic [CFW-1:0] dcf;
        logic           ddone;         // all SF groups sent: END next

        // Rows of the window inside the image: padded row yp + ky in [PAD, PAD + IN_H)
        logic [K-1:0] row_in;
        always_comb begin
            int iy, sr, sx;
            for (int ky = 0; ky < K; ky++) begin
                iy = 32'(yp) + ky - PAD;                  // input row of tap row ky
                row_in[ky] = (iy >= 0) && (iy < IN_H);
            end
            send   = !ddone;
            sel_sf = dj;
            sr = 32'(top) + 32'(dky);
            if (sr >= K) sr = sr - K;
            sx = 32'(xp) + 32'(dkx) - PAD;                // input column of the tap
            sel_inside = row_in[dky] && (sx >= 0) && (sx < IN_W);
            raddr = sel_inside ? AW'(sr * ROW_WORDS + sx * CF + 32'(dcf)) : '0;
        end

        always_ff @(posedge clk) begin
            if (rst) begin
                dj <= '0; dky <= '0; dkx <= '0; dcf <= '0; ddone <= 1'b0;
            end else if (fire && state == S_WIN) begin
                if (!send) begin
                    dj <= '0; dky <= '0; dkx <= '0; dcf <= '0; ddone <= 1'b0;
                end else begin
                    ddone <= (32'(dj) == SF - 1);
                    dj    <= dj + 1'b1;
                    if (32'(dcf) == CF - 1) begin
                        dcf <= '0;
                        if (32'(dkx) == K - 1) begin
                            dkx <= '0;
                            dky <= dky + 1'b1;
                        end else begin
                            dkx <= dkx + 1'b1;
                        end
                    end else begin
                        dcf <= dcf + 1'b1;
                    end
                end
            end
        end
    end

    //-----------------------------------------------------------------------
    // Line buffer: written by R slots, read (registered) by W slots that send
    logic [LB_W-1:0] lb_wdata;
    if (ZERO_SKIP != 0) begin : g_wd_skip
        assign lb_wdata = {in_active, in_data};
    end else begin : g_wd_dense
        assign lb_wdata = in_data;
    end
    logic lb_we, lb_re;
    assign lb_we = fire && rd;
    assign lb_re = fire && (state == S_WIN) && send && sel_inside;
    always_ff @(posedge clk) begin
        if (lb_we) lines[waddr] <= lb_wdata;
        if (lb_re) lb_q <= lines[raddr];
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            state     <= S_START;
            pend      <= 1'b0;
            col       <= '0;
            waddr     <= '0;
            rows_read <= '0;
            need      <= HW'(NEED0);
            yp        <= '0;
            xp        <= '0;
            top       <= KW'(TOP0);
            tail      <= 1'b0;
            q_end     <= 1'b0;
            q_frames  <= 1'b0;
            q_sf      <= '0;
            q_active  <= '0;
        end else if (fire) begin
            pend <= (state == S_WIN);
            if (state == S_WIN) begin
                q_end    <= !send;
                q_frames <= send && sel_inside;
                q_sf     <= send ? sel_sf : '0;
                q_active <= (send && ZS == 0) ? AB'(T_IN) : '0;
            end
            case (state)
                S_READ: begin
                    col   <= row_done ? '0 : col + 1'b1;
                    waddr <= (32'(waddr) == DEPTH - 1) ? '0 : waddr + 1'b1;
                    if (row_done) begin
                        rows_read <= rows_read + 1'b1;
                        if (32'(rows_read) + 1 == 32'(need))
                            state <= tail ? S_DRAIN : S_WIN;
                    end
                end
                S_WIN: begin
                    if (!send) begin            // END: on to the next window
                        if (last_x) begin
                            xp   <= '0;
                            yp   <= yp + YPW'(STRIDE);
                            top  <= top_next;
                            need <= need_next;
                            tail <= last_y;
                            if (rows_read < need_next) state <= S_READ;
                            else if (last_y)           state <= S_DRAIN;
                        end else begin
                            xp <= xp + XPW'(STRIDE);
                        end
                    end
                end
                S_DRAIN: state <= S_IDLE0;
                S_IDLE0: state <= S_IDLE1;
                default: begin                  // S_IDLE1: the next image
                    state     <= S_START;
                    col       <= '0;
                    waddr     <= '0;
                    rows_read <= '0;
                    need      <= HW'(NEED0);
                    yp        <= '0;
                    xp        <= '0;
                    top       <= KW'(TOP0);
                    tail      <= 1'b0;
                end
            endcase
        end
    end

    //-----------------------------------------------------------------------
    // Token
    logic [FRAMES_W-1:0] out_frames;
    logic [AB-1:0]       out_active;
    assign out_frames = q_frames ? lb_q[FRAMES_W-1:0] : '0;
    if (ZERO_SKIP != 0) begin : g_act_skip
        assign out_active = q_frames ? lb_q[FRAMES_W +: AB] : '0;
    end else begin : g_act_dense
        assign out_active = q_active;
    end
    assign out_data = {q_end, out_active, q_sf, out_frames};

endmodule

`default_nettype wire
