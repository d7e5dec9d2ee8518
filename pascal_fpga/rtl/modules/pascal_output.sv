/******************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   Design output adapter: classifier accumulators -> 32-bit AXI words.
 *
 * @description
 *  RTL twin of pascal::write_classes (hls/include/pascal/io.h). The classifier
 *  sends NF = CLASSES/PE words per image, word nf carrying the accumulators of
 *  classes nf*PE .. nf*PE+PE-1 (class nf*PE+pe at [pe*ACC_BITS +: ACC_BITS],
 *  two's complement). Per image this stage writes CLASSES + 1 words of 32 bits:
 *  the accumulators in class order, sign-extended, then the class (the first
 *  index of the maximum, zero-extended) with out_last = 1.
 *
 *  Schedule per image (pascal_fpga/hls/ARCHITECTURE.md, "output"), one slot
 *  per cycle: NF R slots (slot i stores word i), then CLASSES + 1 W slots:
 *  slot NF+c (c < CLASSES) writes accumulator c and updates the running
 *  maximum (strictly greater wins, so the first maximum is kept), slot
 *  NF+CLASSES writes the class. NF+CLASSES+1 slots, then 2 idle cycles
 *  (LOOP_OVERHEAD), then the next image.
 *
 *  Cycle contract (pascal_fpga/rtl/README.md): write latency P = 0 (no drain
 *  slots); global stall: fire = (!rd || in_valid) && (!wr || out_ready),
 *  in_ready = rd && (!wr || out_ready), out_valid = wr && (!rd || in_valid);
 *  nothing advances in a cycle without fire. The idle cycles never stall.
 *
 *  The accumulators wait in one shift register: words enter at the top (after
 *  NF reads class 0 is at the bottom), each accumulator write shifts it down
 *  by ACC_BITS.
 *
 * @param CLASSES   classes (>= 1)
 * @param ACC_BITS  bits of an accumulator (1..32)
 * @param PE        accumulators per input word (divides CLASSES)
 *
 * Ports: clk, rst (synchronous, active high; the first cycle after it is slot
 * 0 of image 0), in_* = the classifier's stream (PE*ACC_BITS), out_* = the
 * AXI output stream (32 bits) and out_last (TLAST: 1 with the class word; a
 * data sideband, meaningful with out_valid).
 *****************************************************************************/
`default_nettype none

module pascal_output #(
    parameter integer CLASSES  = 10,
    parameter integer ACC_BITS = 16,
    parameter integer PE       = 1
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire [PE*ACC_BITS-1:0]   in_data,
    input  wire                     in_valid,
    output wire                     in_ready,
    output wire [31:0]              out_data,
    output wire                     out_valid,
    input  wire                     out_ready,
    output wire                     out_last
);
    localparam integer NF    = CLASSES / PE;
    localparam integer IW    = PE * ACC_BITS;        // input word width
    localparam integer TW    = CLASSES * ACC_BITS;   // all accumulators
    localparam integer SLOTS = NF + CLASSES + 1;
    localparam integer SB    = $clog2(SLOTS);        // SLOTS >= 2
    localparam integer CB    = (CLASSES > 1) ? $clog2(CLASSES) : 1;
    localparam [SB-1:0] S_NF   = SB'(NF);            // first W slot
    localparam [SB-1:0] S_LAST = SB'(SLOTS - 1);     // the class slot

    //-------------------------------------------------------------------------
    // Slot sequencer: busy = running the image's slots, else the idle gap.
    reg          busy;
    reg          gap;       // which of the 2 idle cycles (0, 1)
    reg [SB-1:0] slot;

    wire rd   = busy && (slot < S_NF);
    wire wr   = busy && !(slot < S_NF);
    wire fire = (!rd || in_valid) && (!wr || out_ready);

    assign in_ready  = rd && (!wr || out_ready);
    assign out_valid = wr && (!rd || in_valid);

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b1;
            gap  <= 1'b0;
            slot <= {SB{1'b0}};
        end else if (fire) begin
            if (busy) begin
                if (slot == S_LAST) begin
                    slot <= {SB{1'b0}};
                    busy <= 1'b0;
                    gap  <= 1'b0;
                end else begin
                    slot <= slot + 1'b1;
                end
            end else begin
                gap <= 1'b1;
                if (gap) busy <= 1'b1;
            end
        end
    end

    //-------------------------------------------------------------------------
    // Accumulator shift register
    reg  [TW-1:0] accs;
    wire [TW-1:0] accs_in;    // after storing in_data at the top
    generate
        if (NF > 1) begin : g_shift_in
            assign accs_in = {in_data, accs[TW-1:IW]};
        end else begin : g_load
            assign accs_in = in_data;
        end
    endgenerate

    wire signed [ACC_BITS-1:0] acc = accs[ACC_BITS-1:0];   // accumulator c

    always @(posedge clk) begin
        if (fire && busy) begin
            if (rd) accs <= accs_in;
            else if (slot != S_LAST) accs <= accs >> ACC_BITS;
        end
    end

    //-------------------------------------------------------------------------
    // Running first maximum
    wire [SB-1:0]        cls_slot = slot - S_NF;       // class c in W slots
    wire [CB-1:0]        cls      = cls_slot[CB-1:0];
    reg  signed [ACC_BITS-1:0] best;
    reg  [CB-1:0]        best_cls;

    always @(posedge clk) begin
        if (fire && wr && slot != S_LAST) begin
            if (slot == S_NF || acc > best) begin
                best     <= acc;
                best_cls <= cls;
            end
        end
    end

    //-------------------------------------------------------------------------
    // Output word
    wire [31:0] acc32;
    wire [31:0] cls32;
    generate
        if (ACC_BITS < 32) begin : g_sext
            assign acc32 = {{(32 - ACC_BITS){acc[ACC_BITS-1]}}, acc};
        end else begin : g_full
            assign acc32 = acc;
        end
        if (CB < 32) begin : g_zext
            assign cls32 = {{(32 - CB){1'b0}}, best_cls};
        end else begin : g_cls
            assign cls32 = best_cls;
        end
        if (SB > CB) begin : g_cls_high
            // the class index fits CB bits: the high bits of slot - NF are 0 in W slots
            /* verilator lint_off UNUSED */
            wire unused_cls = &{1'b0, cls_slot[SB-1:CB]};
            /* verilator lint_on UNUSED */
        end
    endgenerate

    assign out_data = (slot == S_LAST) ? cls32 : acc32;
    assign out_last = busy && (slot == S_LAST);

endmodule

`default_nettype wire
