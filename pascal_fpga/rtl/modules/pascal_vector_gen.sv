/****************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   Vector generator (the dense layers' and the classifier's feeder):
 *          layer stream words -> tokens for the matrix-vector unit (pascal_mvu).
 *
 * Parameters
 *   SIMD       channels per input word = lanes per token (one group)
 *   T_IN       frames per channel in a word
 *   FB         bits per frame (1: spikes, > 1: multi-bit frames)
 *   SF         groups (input words) per input vector = per image
 *              (IN_H*IN_W*IN_CH/SIMD)
 *   ZERO_SKIP  1: event-driven, only groups with active > 0 are sent;
 *              0: dense, every group is sent with active = T_IN
 *   Derived:   FRAMES_W = SIMD*T_IN*FB, SFB = bits(max(SF-1,1)),
 *              AB = bits(T_IN), TOKEN_W = FRAMES_W + SFB + AB + 1.
 *
 * Ports (pascal_fpga/rtl/README.md, common interface)
 *   in_data   [FRAMES_W]  layer word: lane s, frame t at [(s*T_IN+t)*FB +: FB]
 *   out_data  [TOKEN_W]   token: frames [0 +: FRAMES_W], sf [FRAMES_W +: SFB],
 *                         active [FRAMES_W+SFB +: AB], end at the MSB;
 *                         END token: end = 1, everything else 0.
 *   active of a group = max over lanes of (1 + index of its last nonzero
 *   frame), 0 if every frame is 0.
 *
 * Schedule per image (one slot per cycle, pascal_fpga/hls/ARCHITECTURE.md):
 *   slot j in 0..SF-1: read word j; if it is sent, its token
 *                      {frames = word, sf = j, active} is produced;
 *   slot SF:           the END token is produced;
 *   slot SF+1:         drain slot (write latency P = 1: every token is
 *                      written one slot after the slot that produces it);
 *   then 2 idle cycles.
 *
 * Global stall (README cycle contract, pascal_handshake): rd = slot j < SF,
 * wr = a token waits in the output register; fire = (!rd || in_valid) &&
 * (!wr || out_ready); all state advances on fire only. The group's active
 * comes from pascal_active.
 ***************************************************************************/
`default_nettype none

module pascal_vector_gen #(
    parameter int SIMD      = 4,
    parameter int T_IN      = 4,
    parameter int FB        = 1,
    parameter int SF        = 8,
    parameter int ZERO_SKIP = 1,
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
    if (SIMD < 1 || T_IN < 1 || FB < 1 || SF < 1) begin : g_bad_shape
        $error("pascal_vector_gen: SIMD, T_IN, FB and SF must be >= 1");
    end
    if (ZERO_SKIP != 0 && ZERO_SKIP != 1) begin : g_bad_zero_skip
        $error("pascal_vector_gen: ZERO_SKIP must be 0 or 1");
    end

    // slot counter: 0..SF-1 read, SF END, SF+1 drain, SF+2 and SF+3 idle
    localparam int LAST = SF + 3;
    localparam int JW   = $clog2(LAST + 1);

    logic [JW-1:0]      slot;
    logic               pend;      // a token waits in the output register (wr)
    logic [TOKEN_W-1:0] token;

    //-----------------------------------------------------------------------
    // Handshake: the global stall of the cycle contract
    logic rd, wr, fire;
    assign rd = (32'(slot) < SF);
    assign wr = pend;
    pascal_handshake u_handshake (
        .rd(rd), .wr(wr), .in_valid(in_valid), .out_ready(out_ready),
        .fire(fire), .in_ready(in_ready), .out_valid(out_valid));

    //-----------------------------------------------------------------------
    // The input word's active: 1 + index of the last frame nonzero in any lane
    logic [AB-1:0] in_active;
    pascal_active #(.SIMD(SIMD), .T_IN(T_IN), .FB(FB), .AB(AB)) u_active (
        .data(in_data), .active(in_active));
    logic [AB-1:0] tok_active;
    logic          emitted;
    assign tok_active = (ZERO_SKIP != 0) ? in_active : AB'(T_IN);
    assign emitted    = (ZERO_SKIP != 0) ? (in_active != '0) : 1'b1;

    //-----------------------------------------------------------------------
    // Slots
    always_ff @(posedge clk) begin
        if (rst) begin
            slot  <= '0;
            pend  <= 1'b0;
            token <= '0;
        end else if (fire) begin
            slot <= (32'(slot) == LAST) ? '0 : slot + 1'b1;
            if (rd) begin
                pend  <= emitted;
                token <= {1'b0, tok_active, SFB'(slot), in_data};
            end else if (32'(slot) == SF) begin
                pend  <= 1'b1;
                token <= {1'b1, {(TOKEN_W - 1){1'b0}}};
            end else begin
                pend  <= 1'b0;
            end
        end
    end

    assign out_data = token;

endmodule

`default_nettype wire
