/******************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   Stream duplicator (fork) of a residual block: every word of the
 *          input stream leaves on both outputs (the block's main path and its
 *          shortcut).
 *
 * @description
 *  One input stream, two output streams (out0 = main path, out1 = shortcut;
 *  the two are interchangeable). Words pass unchanged (BITS wide).
 *
 *  Schedule per image, one slot per cycle: WORDS slots, slot k reads input
 *  word k and writes it to BOTH outputs in the same slot (write latency
 *  P = 0: no pipeline register, no drain slots); then 2 idle cycles
 *  (LOOP_OVERHEAD); then the next image. In the slot programs of
 *  pascal_fpga.hw.schedule: per image one READ_WRITE run of WORDS slots.
 *
 *  Cycle contract (pascal_fpga/rtl/README.md, pascal_handshake) with two
 *  outputs: a write happens only when both outputs take it, so out_ready of
 *  the contract is out0_ready && out1_ready. With rd = wr = a slot of the image (busy):
 *    fire       = (!rd || in_valid) && (!wr || (out0_ready && out1_ready))
 *    in_ready   = rd && (!wr || (out0_ready && out1_ready))
 *    out0_valid = wr && (!rd || in_valid) && out1_ready
 *    out1_valid = wr && (!rd || in_valid) && out0_ready
 *  so a word is transferred on out0 exactly when it is on out1 (and on the
 *  input): in a cycle with fire. An output's valid never depends on its own
 *  ready (only on the other output's, a registered FIFO flag in the
 *  designs). Nothing advances in a cycle without fire; the idle cycles never
 *  stall.
 *
 * @param BITS   bits per word (>= 1)
 * @param WORDS  words per image (>= 1): the slots of an image
 *
 * Ports: clk, rst (synchronous, active high; the first cycle after it is slot
 * 0 of image 0), in_* = the input stream, out0_* and out1_* = the two copies
 * (all BITS wide).
 *****************************************************************************/
`default_nettype none

module pascal_fork #(
    parameter int BITS  = 8,
    parameter int WORDS = 1
) (
    input  logic            clk,
    input  logic            rst,
    input  logic [BITS-1:0] in_data,
    input  logic            in_valid,
    output logic            in_ready,
    output logic [BITS-1:0] out0_data,
    output logic            out0_valid,
    input  logic            out0_ready,
    output logic [BITS-1:0] out1_data,
    output logic            out1_valid,
    input  logic            out1_ready
);
    //-------------------------------------------------------------------------
    // Parameter checks (elaboration)
    if (BITS < 1 || WORDS < 1) begin : g_bad_shape
        $error("pascal_fork: BITS and WORDS must be >= 1");
    end

    localparam int KW = (WORDS > 1) ? $clog2(WORDS) : 1;
    localparam logic [KW-1:0] K_LAST = KW'(WORDS - 1);

    //-------------------------------------------------------------------------
    // Slot sequencer: busy = running the image's slots, else the idle gap.
    logic          busy;
    logic          gap;       // which of the 2 idle cycles (0, 1)
    logic [KW-1:0] k;         // slot = word of the image

    // the global stall, both outputs as one (a word leaves on both or neither)
    logic rd, wr, fire, out_take, out_valid;
    assign rd       = busy;
    assign wr       = busy;
    assign out_take = out0_ready && out1_ready;
    pascal_handshake u_handshake (
        .rd(rd), .wr(wr), .in_valid(in_valid), .out_ready(out_take),
        .fire(fire), .in_ready(in_ready), .out_valid(out_valid));

    assign out0_valid = out_valid && out1_ready;
    assign out1_valid = out_valid && out0_ready;
    assign out0_data  = in_data;
    assign out1_data  = in_data;

    always_ff @(posedge clk) begin
        if (rst) begin
            busy <= 1'b1;
            gap  <= 1'b0;
            k    <= '0;
        end else if (fire) begin
            if (busy) begin
                if (k == K_LAST) begin
                    k    <= '0;
                    busy <= 1'b0;
                    gap  <= 1'b0;
                end else begin
                    k <= k + 1'b1;
                end
            end else begin
                gap <= 1'b1;
                if (gap) busy <= 1'b1;
            end
        end
    end

endmodule

`default_nettype wire
