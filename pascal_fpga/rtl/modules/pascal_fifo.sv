/******************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   First-word-fall-through stream FIFO between two stages.
 *
 * @description
 *  The FIFO of the timing model (pascal_fpga/rtl/README.md, "FIFO"), exactly:
 *   - a registered word count `count` (0..DEPTH);
 *   - in_ready  = count < DEPTH,  out_valid = count != 0;
 *   - out_data  = the oldest word whenever out_valid (first word fall through);
 *   - a word written in cycle t is readable in cycle t+1 (never in t: no bypass
 *     from in_data to out_data); a read in cycle t frees its place in cycle t+1
 *     (a full FIFO accepts no write, even in a cycle where it is read).
 *  A write happens in a cycle with in_valid && in_ready, a read in a cycle with
 *  out_valid && out_ready (both at the rising edge).
 *
 *  Storage: a DEPTH-entry memory with circular read and write pointers (any
 *  DEPTH, the pointers wrap at DEPTH-1). The head word is kept in a register
 *  that is reloaded every cycle from the memory at the *next* read address
 *  (with the write data forwarded when that address is written in the same
 *  cycle). The register thus always equals memory[read pointer], i.e. exactly
 *  the asynchronous read of the contract, while the memory itself only needs a
 *  synchronous (transparent) read port: it maps to LUTRAM for shallow FIFOs and
 *  to block RAM for deep ones.
 *  For DEPTH = 1 the head register itself is the storage. in_ready and
 *  out_valid come from registered full/empty flags (the same values as the
 *  comparisons of `count`).
 *
 * @param WIDTH  bits per word (>= 1)
 * @param DEPTH  words of storage (>= 1, any integer up to 2^20; need not be a
 *               power of two)
 *
 * Ports: clk, rst (synchronous, active high: empties the FIFO), the input
 * stream in_data/in_valid/in_ready, the output stream out_data/out_valid/
 * out_ready.
 *****************************************************************************/
`default_nettype none

module pascal_fifo #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 2
) (
    input  wire             clk,
    input  wire             rst,
    input  wire [WIDTH-1:0] in_data,
    input  wire             in_valid,
    output wire             in_ready,
    output wire [WIDTH-1:0] out_data,
    output wire             out_valid,
    input  wire             out_ready
);
    // pointer and count widths
    localparam integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam integer CW = $clog2(DEPTH + 1);
    localparam [AW-1:0] PTR_LAST = AW'(DEPTH - 1);
    localparam [CW-1:0] CNT_NEAR_FULL = CW'(DEPTH - 1);
    localparam [CW-1:0] CNT_ONE = CW'(1);

    reg [CW-1:0] count;
    reg          full;    // count == DEPTH
    reg          empty;   // count == 0
    reg [AW-1:0] wr_ptr;
    reg [AW-1:0] rd_ptr;

    wire push = in_valid && !full;
    wire pop  = out_ready && !empty;

    wire [AW-1:0] wr_inc  = (wr_ptr == PTR_LAST) ? {AW{1'b0}} : wr_ptr + 1'b1;
    wire [AW-1:0] rd_inc  = (rd_ptr == PTR_LAST) ? {AW{1'b0}} : rd_ptr + 1'b1;
    wire [AW-1:0] rd_next = pop ? rd_inc : rd_ptr;

    always @(posedge clk) begin
        if (rst) begin
            count  <= {CW{1'b0}};
            full   <= 1'b0;
            empty  <= 1'b1;
            wr_ptr <= {AW{1'b0}};
            rd_ptr <= {AW{1'b0}};
        end else begin
            if (push) wr_ptr <= wr_inc;
            if (pop) rd_ptr <= rd_inc;
            if (push && !pop) begin
                count <= count + 1'b1;
                full  <= (count == CNT_NEAR_FULL);
                empty <= 1'b0;
            end else if (pop && !push) begin
                count <= count - 1'b1;
                full  <= 1'b0;
                empty <= (count == CNT_ONE);
            end
        end
    end

    reg [WIDTH-1:0] head;
    generate
        if (DEPTH == 1) begin : g_reg
            // One word: the head register is the storage (written only when empty).
            always @(posedge clk) begin
                if (push) head <= in_data;
            end
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused_ptrs = &{1'b0, rd_next};   // the pointers stay 0
            /* verilator lint_on UNUSEDSIGNAL */
        end else begin : g_mem
            // Storage with a synchronous, write-transparent read of the next head.
            reg [WIDTH-1:0] mem [0:DEPTH-1];
            always @(posedge clk) begin
                if (push) mem[wr_ptr] <= in_data;
            end
            always @(posedge clk) begin
                if (push && wr_ptr == rd_next) head <= in_data;
                else head <= mem[rd_next];
            end
        end
    endgenerate

    assign in_ready  = !full;
    assign out_valid = !empty;
    assign out_data  = head;

endmodule

`default_nettype wire
