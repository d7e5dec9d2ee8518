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
 *  and writes its channels 0.. directly from s_axis_tdata, later slots take them
 *  from a shift register loaded with the rest of the pixel.
 *  PIXELS*CF slots, then 2 idle cycles (LOOP_OVERHEAD), then the next image.
 *
 *  Cycle contract (pascal_fpga/rtl/README.md): write latency P = 0 (no drain
 *  slots); global stall (pascal_handshake, the AXI input as the input
 *  stream): fire = (!rd || s_axis_tvalid) && (!wr || out_ready),
 *  s_axis_tready = rd && (!wr || out_ready), out_valid = wr && (!rd ||
 *  s_axis_tvalid); nothing advances in a cycle without fire. The idle cycles
 *  never stall.
 *
 * @param PIXELS    pixels per image (H*W, >= 1)
 * @param CH        channels per pixel (>= 1)
 * @param IN_BITS   bits per channel (>= 1)
 * @param AXI_BITS  bits of the AXI word (>= CH*IN_BITS; whole bytes in the
 *                  design, any width here)
 * @param GROUP     channels per output word (divides CH)
 *
 * Ports: clk, rst (synchronous, active high; the first cycle after it is slot
 * 0 of image 0), s_axis_tdata/tvalid/tready = the AXI-Stream pixel input
 * (AXI_BITS; the top's TLAST is not needed: images are PIXELS words),
 * out_* = the layer stream (GROUP*IN_BITS).
 *****************************************************************************/
`default_nettype none

module pascal_input #(
    parameter int PIXELS   = 4,
    parameter int CH       = 1,
    parameter int IN_BITS  = 8,
    parameter int AXI_BITS = 8,
    parameter int GROUP    = 1
) (
    input  logic                     clk,
    input  logic                     rst,
    input  logic [AXI_BITS-1:0]      s_axis_tdata,
    input  logic                     s_axis_tvalid,
    output logic                     s_axis_tready,
    output logic [GROUP*IN_BITS-1:0] out_data,
    output logic                     out_valid,
    input  logic                     out_ready
);
    //-------------------------------------------------------------------------
    // Parameter checks (elaboration)
    if (PIXELS < 1 || CH < 1 || IN_BITS < 1 || GROUP < 1) begin : g_bad_shape
        $error("pascal_input: PIXELS, CH, IN_BITS and GROUP must be >= 1");
    end
    if (CH % GROUP != 0) begin : g_bad_group
        $error("pascal_input: GROUP must divide CH");
    end
    if (AXI_BITS < CH * IN_BITS) begin : g_bad_axi
        $error("pascal_input: AXI_BITS must hold CH * IN_BITS");
    end

    localparam int CF  = CH / GROUP;         // output words per pixel
    localparam int W   = GROUP * IN_BITS;    // output word width
    localparam int PX  = CH * IN_BITS;       // used bits of the AXI word
    localparam int PB  = (PIXELS > 1) ? $clog2(PIXELS) : 1;
    localparam int CB  = (CF > 1) ? $clog2(CF) : 1;
    localparam logic [PB-1:0] PIX_LAST = PB'(PIXELS - 1);
    localparam logic [CB-1:0] CF_LAST  = CB'(CF - 1);

    //-------------------------------------------------------------------------
    // Slot sequencer: busy = running the image's slots, else the idle gap.
    logic          busy;
    logic          gap;       // which of the 2 idle cycles (0, 1)
    logic [PB-1:0] px;        // pixel p
    logic [CB-1:0] cf;        // word of the pixel

    logic rd, wr, fire;
    assign rd = busy && (cf == '0);
    assign wr = busy;
    pascal_handshake u_handshake (
        .rd(rd), .wr(wr), .in_valid(s_axis_tvalid), .out_ready(out_ready),
        .fire(fire), .in_ready(s_axis_tready), .out_valid(out_valid));

    always_ff @(posedge clk) begin
        if (rst) begin
            busy <= 1'b1;
            gap  <= 1'b0;
            px   <= '0;
            cf   <= '0;
        end else if (fire) begin
            if (busy) begin
                if (cf == CF_LAST) begin
                    cf <= '0;
                    if (px == PIX_LAST) begin
                        px   <= '0;
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
    if (CF > 1) begin : g_shift
        logic [PX-W-1:0] rest;
        always_ff @(posedge clk) begin
            if (fire && busy) begin
                if (rd) rest <= s_axis_tdata[PX-1:W];
                else    rest <= rest >> W;
            end
        end
        assign out_data = rd ? s_axis_tdata[W-1:0] : rest[W-1:0];
    end else begin : g_direct
        assign out_data = s_axis_tdata[W-1:0];
    end
    if (AXI_BITS > PX) begin : g_pad
        // the AXI word's padding bits above the pixel
        /* verilator lint_off UNUSED */
        logic unused_pad;
        assign unused_pad = &{1'b0, s_axis_tdata[AXI_BITS-1:PX]};
        /* verilator lint_on UNUSED */
    end

endmodule

`default_nettype wire
