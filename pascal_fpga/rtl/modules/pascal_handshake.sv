/******************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   The global stall of the cycle contract (pascal_fpga/rtl/README.md),
 *          shared by every stage module: one slot completes only when its
 *          read and its write can both happen.
 *
 * @description
 *  Purely combinational. The stage says what its current slot does:
 *    rd  the slot reads a word from the input stream;
 *    wr  a write is due: the stage's last pipeline register holds a word.
 *  From these and the two streams' flags:
 *    fire      = (!rd || in_valid) && (!wr || out_ready)
 *    in_ready  = rd && (!wr || out_ready)
 *    out_valid = wr && (!rd || in_valid)
 *  Every register of the stage advances only in a cycle with fire. in_ready
 *  never depends on in_valid and out_valid never depends on out_ready, so
 *  chaining stages through FIFOs (whose flags are registered) makes no
 *  combinational loop.
 *
 *  A stage with two streams on one side maps them onto this one:
 *    two outputs (pascal_fork): out_ready = out0_ready && out1_ready, and
 *      out0_valid = out_valid && out1_ready (out1_valid likewise);
 *    two inputs (pascal_add): in_valid = main_valid && short_valid, and
 *      main_ready = in_ready && short_valid (short_ready likewise).
 *
 * Ports: rd, wr (from the stage), in_valid, out_ready (from its neighbours);
 * fire (to the stage's registers), in_ready, out_valid (to its neighbours).
 *****************************************************************************/
`default_nettype none

module pascal_handshake (
    input  logic rd,
    input  logic wr,
    input  logic in_valid,
    input  logic out_ready,
    output logic fire,
    output logic in_ready,
    output logic out_valid
);
    assign fire      = (!rd || in_valid) && (!wr || out_ready);
    assign in_ready  = rd && (!wr || out_ready);
    assign out_valid = wr && (!rd || in_valid);
endmodule

`default_nettype wire
