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
    parameter int WIDTH = 8,
    parameter int DEPTH = 2
) (
    input  logic             clk,
    input  logic             rst,
    input  logic [WIDTH-1:0] in_data,
    input  logic             in_valid,
    output logic             in_ready,
    output logic [WIDTH-1:0] out_data,
    output logic             out_valid,
    input  logic             out_ready
);
    // parameter checks (elaboration)
    if (WIDTH < 1) begin : g_bad_width
        $error("pascal_fifo: WIDTH must be >= 1");
    end
    if (DEPTH < 1 || DEPTH > (1 << 20)) begin : g_bad_depth
        $error("pascal_fifo: DEPTH must be 1..2^20");
    end

    // pointer and count widths
    localparam int AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam int CW = $clog2(DEPTH + 1);
    localparam logic [AW-1:0] PTR_LAST = AW'(DEPTH - 1);
    localparam logic [CW-1:0] CNT_NEAR_FULL = CW'(DEPTH - 1);
    localparam logic [CW-1:0] CNT_ONE = CW'(1);

    logic [CW-1:0] count;
    logic          full;    // count == DEPTH
    logic          empty;   // count == 0
    logic [AW-1:0] wr_ptr;
    logic [AW-1:0] rd_ptr;

    logic push, pop;
    assign push = in_valid && !full;
    assign pop  = out_ready && !empty;

    logic [AW-1:0] wr_inc, rd_inc, rd_next;
    assign wr_inc  = (wr_ptr == PTR_LAST) ? '0 : wr_ptr + 1'b1;
    assign rd_inc  = (rd_ptr == PTR_LAST) ? '0 : rd_ptr + 1'b1;
    assign rd_next = pop ? rd_inc : rd_ptr;

    always_ff @(posedge clk) begin
        if (rst) begin
            count  <= '0;
            full   <= 1'b0;
            empty  <= 1'b1;
            wr_ptr <= '0;
            rd_ptr <= '0;
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

    logic [WIDTH-1:0] head;
    if (DEPTH == 1) begin : g_reg
        // One word: the head register is the storage (written only when empty).
        always_ff @(posedge clk) begin
            if (push) head <= in_data;
        end
        /* verilator lint_off UNUSEDSIGNAL */
        logic unused_ptrs;
        assign unused_ptrs = &{1'b0, rd_next};   // the pointers stay 0
        /* verilator lint_on UNUSEDSIGNAL */
    end else begin : g_mem
        // Storage with a synchronous, write-transparent read of the next head.
        logic [WIDTH-1:0] mem [0:DEPTH-1];
        always_ff @(posedge clk) begin
            if (push) mem[wr_ptr] <= in_data;
        end
        always_ff @(posedge clk) begin
            if (push && wr_ptr == rd_next) head <= in_data;
            else head <= mem[rd_next];
        end
    end

    assign in_ready  = !full;
    assign out_valid = !empty;
    assign out_data  = head;

endmodule

`default_nettype wire
