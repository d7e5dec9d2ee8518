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
 * Global stall (README cycle contract): rd = slot j < SF, wr = a token waits
 * in the output register; fire = (!rd || in_valid) && (!wr || out_ready);
 * all state advances on fire only.
 ***************************************************************************/
`default_nettype none

module pascal_vector_gen #(
    parameter integer SIMD      = 4,
    parameter integer T_IN      = 4,
    parameter integer FB        = 1,
    parameter integer SF        = 8,
    parameter integer ZERO_SKIP = 1,
    localparam integer FRAMES_W = SIMD * T_IN * FB,
    localparam integer SFB      = (SF <= 2) ? 1 : $clog2(SF),          // bits(max(SF-1,1))
    localparam integer AB       = (T_IN < 2) ? 1 : $clog2(T_IN + 1),   // bits(T_IN)
    localparam integer TOKEN_W  = FRAMES_W + SFB + AB + 1
) (
    input  wire                clk,
    input  wire                rst,
    input  wire [FRAMES_W-1:0] in_data,
    input  wire                in_valid,
    output wire                in_ready,
    output wire [TOKEN_W-1:0]  out_data,
    output wire                out_valid,
    input  wire                out_ready
);

    // slot counter: 0..SF-1 read, SF END, SF+1 drain, SF+2 and SF+3 idle
    localparam integer LAST = SF + 3;
    localparam integer JW   = $clog2(LAST + 1);

    reg [JW-1:0]      slot;
    reg               pend;      // a token waits in the output register (wr)
    reg [TOKEN_W-1:0] token;

    //-----------------------------------------------------------------------
    // Handshake: the global stall of the cycle contract
    wire rd   = (32'(slot) < SF);
    wire wr   = pend;
    wire fire = (!rd || in_valid) && (!wr || out_ready);
    assign in_ready  = rd && (!wr || out_ready);
    assign out_valid = wr && (!rd || in_valid);

    //-----------------------------------------------------------------------
    // The input word's active: 1 + index of the last frame nonzero in any lane
    reg [AB-1:0] in_active;
    reg          frame_any;
    integer      t, s;
    always @* begin
        in_active = {AB{1'b0}};
        for (t = 0; t < T_IN; t = t + 1) begin
            frame_any = 1'b0;
            for (s = 0; s < SIMD; s = s + 1)
                frame_any = frame_any | (|in_data[(s * T_IN + t) * FB +: FB]);
            if (frame_any) in_active = AB'(t + 1);
        end
    end
    wire [AB-1:0] tok_active = (ZERO_SKIP != 0) ? in_active : AB'(T_IN);
    wire          emitted    = (ZERO_SKIP != 0) ? (in_active != {AB{1'b0}}) : 1'b1;

    //-----------------------------------------------------------------------
    // Slots
    always @(posedge clk) begin
        if (rst) begin
            slot  <= {JW{1'b0}};
            pend  <= 1'b0;
            token <= {TOKEN_W{1'b0}};
        end else if (fire) begin
            slot <= (32'(slot) == LAST) ? {JW{1'b0}} : slot + 1'b1;
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
