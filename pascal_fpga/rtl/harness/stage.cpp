// pascal-fpga: the Verilator harness of one stage module alone (pascal_fpga.hw.rtlsim.run_stage).
// Read at run time by pascal_fpga/hw/rtlsim.py, which fills in the placeholders (names between at
// signs: the module's stream ports) before compiling; see pascal_fpga/rtl/README.md, "Simulation
// harness for one module".
//
// Drives the input stream from a word file (valid whenever words remain, and valid[cycle] if a
// pattern is given), the output's ready from a pattern (1 by default and past its end), and
// records every transfer's cycle (cycle 0 = the first cycle after reset).
//
//   sim in.bin in_n32 out_n32 cycles max_outputs ready.bin|- valid.bin|- out.bin incyc.bin outcyc.bin
@COMMON@

// the module's stream ports: the input (data, valid, ready) and the output (data, valid, ready)
#define IN_DATA @IN_DATA@
#define IN_VALID @IN_VALID@
#define IN_READY @IN_READY@
#define OUT_DATA @OUT_DATA@
#define OUT_VALID @OUT_VALID@
#define OUT_READY @OUT_READY@

int main(int argc, char **argv) {
    // in.bin in_n32 out_n32 cycles max_outputs ready.bin|- valid.bin|- out.bin incyc.bin outcyc.bin
    if (argc != 11) { fprintf(stderr, "harness: bad arguments\n"); return 2; }
    std::vector<uint8_t> raw = slurp(argv[1]);
    const unsigned in_n32 = atoi(argv[2]), out_n32 = atoi(argv[3]);
    const long long cycles = atoll(argv[4]), max_out = atoll(argv[5]);
    std::vector<uint8_t> ready, valid;
    if (argv[6][0] != '-') ready = slurp(argv[6]);
    if (argv[7][0] != '-') valid = slurp(argv[7]);
    const uint32_t *in = (const uint32_t *)raw.data();
    const size_t n_in = raw.size() / 4 / in_n32;
    std::vector<uint32_t> out;
    std::vector<int64_t> in_cyc, out_cyc;
    std::vector<uint32_t> zero(in_n32 + 2, 0), word(out_n32 + 2, 0);

    Vdut *dut = new Vdut;
    dut->clk = 0; dut->rst = 1; dut->IN_VALID = 0; dut->OUT_READY = 0;
    dut->eval();
    for (int i = 0; i < 3; i++) { dut->clk = 1; dut->eval(); dut->clk = 0; dut->eval(); }
    dut->rst = 0;
    size_t idx = 0;
    for (long long cycle = 0; cycle < cycles; cycle++) {
        const bool have = idx < n_in && (valid.empty() || (cycle < (long long)valid.size() && valid[cycle]));
        dut->IN_VALID = have;
        put(dut->IN_DATA, idx < n_in ? in + idx * in_n32 : zero.data(), in_n32);
        dut->OUT_READY = ready.empty() ? 1 : (cycle < (long long)ready.size() ? ready[cycle] : 1);
        dut->eval();
        const bool in_fire = dut->IN_VALID && dut->IN_READY;
        const bool out_fire = dut->OUT_VALID && dut->OUT_READY;
        if (out_fire) {
            get(dut->OUT_DATA, word.data(), out_n32);
            out.insert(out.end(), word.begin(), word.begin() + out_n32);
            out_cyc.push_back(cycle);
        }
        if (in_fire) { in_cyc.push_back(cycle); idx++; }
        dut->clk = 1; dut->eval(); dut->clk = 0; dut->eval();
        if (max_out > 0 && (long long)out_cyc.size() >= max_out) break;
    }
    FILE *f = fopen(argv[8], "wb"); fwrite(out.data(), 4, out.size(), f); fclose(f);
    f = fopen(argv[9], "wb"); fwrite(in_cyc.data(), 8, in_cyc.size(), f); fclose(f);
    f = fopen(argv[10], "wb"); fwrite(out_cyc.data(), 8, out_cyc.size(), f); fclose(f);
    delete dut;
    return 0;
}
