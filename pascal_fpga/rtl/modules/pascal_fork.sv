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
 *  Cycle contract (pascal_fpga/rtl/README.md) with two outputs: a write
 *  happens only when both outputs take it, so out_ready of the contract is
 *  out0_ready && out1_ready. With rd = wr = a slot of the image (busy):
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
    parameter integer BITS  = 8,
    parameter integer WORDS = 1
) (
    input  wire            clk,
    input  wire            rst,
    input  wire [BITS-1:0] in_data,
    input  wire            in_valid,
    output wire            in_ready,
    output wire [BITS-1:0] out0_data,
    output wire            out0_valid,
    input  wire            out0_ready,
    output wire [BITS-1:0] out1_data,
    output wire            out1_valid,
    input  wire            out1_ready
);
    localparam integer KW = (WORDS > 1) ? $clog2(WORDS) : 1;
    localparam [KW-1:0] K_LAST = KW'(WORDS - 1);

    //-------------------------------------------------------------------------
    // Slot sequencer: busy = running the image's slots, else the idle gap.
    reg          busy;
    reg          gap;       // which of the 2 idle cycles (0, 1)
    reg [KW-1:0] k;         // slot = word of the image

    wire rd       = busy;
    wire wr       = busy;
    wire out_take = out0_ready && out1_ready;
    wire fire     = (!rd || in_valid) && (!wr || out_take);

    assign in_ready   = rd && (!wr || out_take);
    assign out0_valid = wr && (!rd || in_valid) && out1_ready;
    assign out1_valid = wr && (!rd || in_valid) && out0_ready;
    assign out0_data  = in_data;
    assign out1_data  = in_data;

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b1;
            gap  <= 1'b0;
            k    <= {KW{1'b0}};
        end else if (fire) begin
            if (busy) begin
                if (k == K_LAST) begin
                    k    <= {KW{1'b0}};
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
