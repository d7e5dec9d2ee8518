/******************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   Design input adapter: AXI pixel words -> layer-stream words.
 *
 * @description
 *  RTL twin of pascal::read_pixels (hls/include/pascal/io.h). One AXI word per
 *  input pixel carries the pixel's CH channels, channel c at
 *  [c*IN_BITS +: IN_BITS] (bits above CH*IN_BITS are ignored). Each pixel
 *  leaves as CF = CH/GROUP layer-stream words of GROUP channels with T = 1
 *  frame of FB = IN_BITS bits: word cf carries channels cf*GROUP ..
 *  cf*GROUP+GROUP-1, channel g of the word at [g*IN_BITS +: IN_BITS].
 *
 *  Schedule per image (pascal_fpga/hls/ARCHITECTURE.md, "input"), one slot
 *  per cycle: for each pixel p, for cf in 0..CF-1: one slot that writes word
 *  cf of pixel p; the pixel's first slot (cf = 0) also reads the AXI word (rd)
 *  and writes its channels 0.. directly from in_data, later slots take them
 *  from a shift register loaded with the rest of the pixel.
 *  PIXELS*CF slots, then 2 idle cycles (LOOP_OVERHEAD), then the next image.
 *
 *  Cycle contract (pascal_fpga/rtl/README.md): write latency P = 0 (no drain
 *  slots); global stall: fire = (!rd || in_valid) && (!wr || out_ready),
 *  in_ready = rd && (!wr || out_ready), out_valid = wr && (!rd || in_valid);
 *  nothing advances in a cycle without fire. The idle cycles never stall.
 *
 * @param PIXELS    pixels per image (H*W, >= 1)
 * @param CH        channels per pixel (>= 1)
 * @param IN_BITS   bits per channel (>= 1)
 * @param AXI_BITS  bits of the AXI word (>= CH*IN_BITS; whole bytes in the
 *                  design, any width here)
 * @param GROUP     channels per output word (divides CH)
 *
 * Ports: clk, rst (synchronous, active high; the first cycle after it is slot
 * 0 of image 0), in_* = the AXI pixel stream (AXI_BITS), out_* = the layer
 * stream (GROUP*IN_BITS).
 *****************************************************************************/
`default_nettype none

module pascal_input #(
    parameter integer PIXELS   = 4,
    parameter integer CH       = 1,
    parameter integer IN_BITS  = 8,
    parameter integer AXI_BITS = 8,
    parameter integer GROUP    = 1
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire [AXI_BITS-1:0]        in_data,
    input  wire                       in_valid,
    output wire                       in_ready,
    output wire [GROUP*IN_BITS-1:0]   out_data,
    output wire                       out_valid,
    input  wire                       out_ready
);
    localparam integer CF  = CH / GROUP;         // output words per pixel
    localparam integer W   = GROUP * IN_BITS;    // output word width
    localparam integer PX  = CH * IN_BITS;       // used bits of the AXI word
    localparam integer PB  = (PIXELS > 1) ? $clog2(PIXELS) : 1;
    localparam integer CB  = (CF > 1) ? $clog2(CF) : 1;
    localparam [PB-1:0] PIX_LAST = PB'(PIXELS - 1);
    localparam [CB-1:0] CF_LAST  = CB'(CF - 1);

    //-------------------------------------------------------------------------
    // Slot sequencer: busy = running the image's slots, else the idle gap.
    reg          busy;
    reg          gap;       // which of the 2 idle cycles (0, 1)
    reg [PB-1:0] px;        // pixel p
    reg [CB-1:0] cf;        // word of the pixel

    wire rd   = busy && (cf == {CB{1'b0}});
    wire wr   = busy;
    wire fire = (!rd || in_valid) && (!wr || out_ready);

    assign in_ready  = rd && (!wr || out_ready);
    assign out_valid = wr && (!rd || in_valid);

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b1;
            gap  <= 1'b0;
            px   <= {PB{1'b0}};
            cf   <= {CB{1'b0}};
        end else if (fire) begin
            if (busy) begin
                if (cf == CF_LAST) begin
                    cf <= {CB{1'b0}};
                    if (px == PIX_LAST) begin
                        px   <= {PB{1'b0}};
                        busy <= 1'b0;
                        gap  <= 1'b0;
                    end else begin
                        px <= px + 1'b1;
                    end
                end else begin
                    cf <= cf + 1'b1;
                end
            end else begin
                gap <= 1'b1;
                if (gap) busy <= 1'b1;
            end
        end
    end

    //-------------------------------------------------------------------------
    // Data path: word 0 straight from the AXI word, words 1.. from a shift
    // register holding the rest of the pixel.
    generate
        if (CF > 1) begin : g_shift
            reg [PX-W-1:0] rest;
            always @(posedge clk) begin
                if (fire && busy) begin
                    if (rd) rest <= in_data[PX-1:W];
                    else    rest <= rest >> W;
                end
            end
            assign out_data = rd ? in_data[W-1:0] : rest[W-1:0];
        end else begin : g_direct
            assign out_data = in_data[W-1:0];
        end
        if (AXI_BITS > PX) begin : g_pad
            // the AXI word's padding bits above the pixel
            /* verilator lint_off UNUSED */
            wire unused_pad = &{1'b0, in_data[AXI_BITS-1:PX]};
            /* verilator lint_on UNUSED */
        end
    endgenerate

endmodule

`default_nettype wire
