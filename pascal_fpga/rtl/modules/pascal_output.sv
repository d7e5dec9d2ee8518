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
 *  index of the maximum, zero-extended) with m_axis_tlast = 1.
 *
 *  Schedule per image (pascal_fpga/hls/ARCHITECTURE.md, "output"), one slot
 *  per cycle: NF R slots (slot i stores word i), then CLASSES + 1 W slots:
 *  slot NF+c (c < CLASSES) writes accumulator c and updates the running
 *  maximum (strictly greater wins, so the first maximum is kept), slot
 *  NF+CLASSES writes the class. NF+CLASSES+1 slots, then 2 idle cycles
 *  (LOOP_OVERHEAD), then the next image.
 *
 *  Cycle contract (pascal_fpga/rtl/README.md): write latency P = 0 (no drain
 *  slots); global stall (pascal_handshake, the AXI output as the output
 *  stream): fire = (!rd || in_valid) && (!wr || m_axis_tready),
 *  in_ready = rd && (!wr || m_axis_tready), m_axis_tvalid = wr && (!rd ||
 *  in_valid); nothing advances in a cycle without fire. The idle cycles
 *  never stall.
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
 * 0 of image 0), in_* = the classifier's stream (PE*ACC_BITS),
 * m_axis_tdata/tvalid/tready = the AXI-Stream output (32 bits) and
 * m_axis_tlast (1 with the class word; a data sideband, meaningful with
 * m_axis_tvalid).
 *****************************************************************************/
`default_nettype none

module pascal_output #(
    parameter int CLASSES  = 10,
    parameter int ACC_BITS = 16,
    parameter int PE       = 1
) (
    input  logic                   clk,
    input  logic                   rst,
    input  logic [PE*ACC_BITS-1:0] in_data,
    input  logic                   in_valid,
    output logic                   in_ready,
    output logic [31:0]            m_axis_tdata,
    output logic                   m_axis_tvalid,
    input  logic                   m_axis_tready,
    output logic                   m_axis_tlast
);
    //-------------------------------------------------------------------------
    // Parameter checks (elaboration)
    if (CLASSES < 1 || PE < 1) begin : g_bad_shape
        $error("pascal_output: CLASSES and PE must be >= 1");
    end
    if (CLASSES % PE != 0) begin : g_bad_pe
        $error("pascal_output: PE must divide CLASSES");
    end
    if (ACC_BITS < 1 || ACC_BITS > 32) begin : g_bad_acc_bits
        $error("pascal_output: ACC_BITS must be 1..32");
    end

    localparam int NF    = CLASSES / PE;
    localparam int IW    = PE * ACC_BITS;        // input word width
    localparam int TW    = CLASSES * ACC_BITS;   // all accumulators
    localparam int SLOTS = NF + CLASSES + 1;
    localparam int SB    = $clog2(SLOTS);        // SLOTS >= 2
    localparam int CB    = (CLASSES > 1) ? $clog2(CLASSES) : 1;
    localparam logic [SB-1:0] S_NF   = SB'(NF);            // first W slot
    localparam logic [SB-1:0] S_LAST = SB'(SLOTS - 1);     // the class slot

    //-------------------------------------------------------------------------
    // Slot sequencer: busy = running the image's slots, else the idle gap.
    logic          busy;
    logic          gap;       // which of the 2 idle cycles (0, 1)
    logic [SB-1:0] slot;

    logic rd, wr, fire;
    assign rd = busy && (slot < S_NF);
    assign wr = busy && !(slot < S_NF);
    pascal_handshake u_handshake (
        .rd(rd), .wr(wr), .in_valid(in_valid), .out_ready(m_axis_tready),
        .fire(fire), .in_ready(in_ready), .out_valid(m_axis_tvalid));

    always_ff @(posedge clk) begin
        if (rst) begin
            busy <= 1'b1;
            gap  <= 1'b0;
            slot <= '0;
        end else if (fire) begin
            if (busy) begin
                if (slot == S_LAST) begin
                    slot <= '0;
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
    logic [TW-1:0] accs;
    logic [TW-1:0] accs_in;    // after storing in_data at the top
    if (NF > 1) begin : g_shift_in
        assign accs_in = {in_data, accs[TW-1:IW]};
    end else begin : g_load
        assign accs_in = in_data;
    end

    logic signed [ACC_BITS-1:0] acc;   // accumulator c
    assign acc = accs[ACC_BITS-1:0];

    always_ff @(posedge clk) begin
        if (fire && busy) begin
            if (rd) accs <= accs_in;
            else if (slot != S_LAST) accs <= accs >> ACC_BITS;
        end
    end

    //-------------------------------------------------------------------------
    // Running first maximum
    logic [SB-1:0]              cls_slot;       // class c in W slots
    logic [CB-1:0]              cls;
    logic signed [ACC_BITS-1:0] best;
    logic [CB-1:0]              best_cls;
    assign cls_slot = slot - S_NF;
    assign cls      = cls_slot[CB-1:0];

    always_ff @(posedge clk) begin
        if (fire && wr && slot != S_LAST) begin
            if (slot == S_NF || acc > best) begin
                best     <= acc;
                best_cls <= cls;
            end
        end
    end

    //-------------------------------------------------------------------------
    // Output word
    logic [31:0] acc32;
    logic [31:0] cls32;
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
        logic unused_cls;
        assign unused_cls = &{1'b0, cls_slot[SB-1:CB]};
        /* verilator lint_on UNUSED */
    end

    assign m_axis_tdata = (slot == S_LAST) ? cls32 : acc32;
    assign m_axis_tlast = busy && (slot == S_LAST);

endmodule

`default_nettype wire
