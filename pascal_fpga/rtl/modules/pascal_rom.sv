/*
 * pascal_rom: a read-only memory with a registered (synchronous) read, initialised from a
 * $readmemh file; the matrix-vector unit's weight and threshold / bias tables.
 *
 * Parameters
 *   WIDTH      bits per word
 *   DEPTH      words (addresses 0 .. DEPTH-1)
 *   AW         address bits (>= 1)
 *   FILE       $readmemh file, one hex word per line (no file: the ROM is left empty)
 *   LUT_DEPTH  up to this many words the ROM stays in LUTs (a LUT6 per bit is the cheaper
 *              ROM); deeper, it is forced into block RAM (Yosys keeps ROMs in logic unless
 *              told: rom_style = "block")
 *
 * Ports: q <= rom[addr] at a rising edge where en is 1 (the caller's global-stall fire);
 * otherwise q holds.
 */
`default_nettype none
module pascal_rom #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 2,
    parameter integer AW = 1,
    parameter FILE = "",
    parameter integer LUT_DEPTH = 64
) (
    input  wire             clk,
    input  wire             en,
    input  wire [AW-1:0]    addr,
    output reg  [WIDTH-1:0] q
);
    generate
        if (DEPTH > LUT_DEPTH) begin : g_bram
            // filled by $readmemh only (left empty when no file name is given)
            /* verilator lint_off UNDRIVEN */
            (* rom_style = "block" *) reg [WIDTH-1:0] rom [0:DEPTH-1];
            /* verilator lint_on UNDRIVEN */
            if (FILE != "") begin : g_init
                initial begin
                    $readmemh(FILE, rom);
                end
            end
            always @(posedge clk) begin
                if (en) begin
                    q <= rom[addr];
                end
            end
        end else begin : g_lut
            /* verilator lint_off UNDRIVEN */
            reg [WIDTH-1:0] rom [0:DEPTH-1];
            /* verilator lint_on UNDRIVEN */
            if (FILE != "") begin : g_init
                initial begin
                    $readmemh(FILE, rom);
                end
            end
            always @(posedge clk) begin
                if (en) begin
                    q <= rom[addr];
                end
            end
        end
    endgenerate
endmodule
`default_nettype wire
