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
    parameter int WIDTH = 8,
    parameter int DEPTH = 2,
    parameter int AW = 1,
    parameter FILE = "",
    parameter int LUT_DEPTH = 64
) (
    input  logic             clk,
    input  logic             en,
    input  logic [AW-1:0]    addr,
    output logic [WIDTH-1:0] q
);
    // parameter checks (elaboration)
    if (WIDTH < 1 || DEPTH < 1 || AW < 1) begin : g_bad_shape
        $error("pascal_rom: WIDTH, DEPTH and AW must be >= 1");
    end
    if (AW < 31 && DEPTH > (1 << AW)) begin : g_bad_aw
        $error("pascal_rom: AW address bits cannot reach DEPTH words");
    end

    if (DEPTH > LUT_DEPTH) begin : g_bram
        // filled by $readmemh only (left empty when no file name is given)
        /* verilator lint_off UNDRIVEN */
        (* rom_style = "block" *) logic [WIDTH-1:0] rom [0:DEPTH-1];
        /* verilator lint_on UNDRIVEN */
        if (FILE != "") begin : g_init
            initial begin
                $readmemh(FILE, rom);
            end
        end
        always_ff @(posedge clk) begin
            if (en) begin
                q <= rom[addr];
            end
        end
    end else begin : g_lut
        /* verilator lint_off UNDRIVEN */
        logic [WIDTH-1:0] rom [0:DEPTH-1];
        /* verilator lint_on UNDRIVEN */
        if (FILE != "") begin : g_init
            initial begin
                $readmemh(FILE, rom);
            end
        end
        always_ff @(posedge clk) begin
            if (en) begin
                q <= rom[addr];
            end
        end
    end
endmodule
`default_nettype wire
