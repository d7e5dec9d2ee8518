// pascal-fpga: the Verilator harness of a module with several input and / or output streams
// (pascal_fpga.hw.rtlsim.run_ports: the residual fork and add). Read at run time by
// pascal_fpga/hw/rtlsim.py, which fills in every placeholder (a name between at signs) before
// compiling: N_IN, N_OUT (the stream counts), IN_N32, OUT_N32 (32-bit limbs per word of each
// stream), and RESET, DRIVE, SAMPLE (the per-stream statements that name the module's ports).
//
// Per input stream: its words and valid pattern; per output stream: its ready pattern; records
// every transfer's cycle on every stream (cycle 0 = the first cycle after reset).
@COMMON@

static void spill(const char *path, const void *data, size_t size, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "harness: cannot write %s\n", path); exit(2); }
    if (n) fwrite(data, size, n, f);
    fclose(f);
}

struct In {       // an input stream: words, valid pattern, transfer cycles
    unsigned n32; std::vector<uint8_t> raw, valid; size_t idx = 0, n = 0;
    std::vector<int64_t> cyc; std::vector<uint32_t> zero;
    const uint32_t *word() const {
        return idx < n ? (const uint32_t *)raw.data() + idx * n32 : zero.data();
    }
    bool have(long long cycle) const {
        return idx < n && (valid.empty() || (cycle < (long long)valid.size() && valid[cycle]));
    }
};
struct Out {      // an output stream: ready pattern, words, transfer cycles
    unsigned n32; std::vector<uint8_t> ready; std::vector<uint32_t> words, word;
    std::vector<int64_t> cyc;
    bool take(long long cycle) const {
        return ready.empty() ? true : (cycle < (long long)ready.size() ? ready[cycle] != 0 : true);
    }
};

int main(int argc, char **argv) {
    // cycles max_outputs, per input: words.bin valid.bin|- cyc.bin,
    // per output: ready.bin|- words.bin cyc.bin
    const int n_in = @N_IN@, n_out = @N_OUT@;
    const unsigned in_n32[] = {@IN_N32@}, out_n32[] = {@OUT_N32@};
    if (argc != 3 + 3 * n_in + 3 * n_out) { fprintf(stderr, "harness: bad arguments\n"); return 2; }
    const long long cycles = atoll(argv[1]), max_out = atoll(argv[2]);
    std::vector<In> in(n_in);
    std::vector<Out> out(n_out);
    for (int i = 0; i < n_in; i++) {
        in[i].n32 = in_n32[i];
        in[i].raw = slurp(argv[3 + 3 * i]);
        in[i].valid = slurp(argv[4 + 3 * i]);
        in[i].n = in[i].raw.size() / 4 / in_n32[i];
        in[i].zero.assign(in_n32[i] + 2, 0);
    }
    const int ob = 3 + 3 * n_in;
    for (int o = 0; o < n_out; o++) {
        out[o].n32 = out_n32[o];
        out[o].ready = slurp(argv[ob + 3 * o]);
        out[o].word.assign(out_n32[o] + 2, 0);
    }

    Vdut *dut = new Vdut;
    dut->clk = 0; dut->rst = 1;
@RESET@
    dut->eval();
    for (int i = 0; i < 3; i++) { dut->clk = 1; dut->eval(); dut->clk = 0; dut->eval(); }
    dut->rst = 0;
    for (long long cycle = 0; cycle < cycles; cycle++) {
@DRIVE@
        dut->eval();
        bool in_fire[n_in > 0 ? n_in : 1], out_fire[n_out > 0 ? n_out : 1];
@SAMPLE@
        for (int o = 0; o < n_out; o++) if (out_fire[o]) {
            out[o].words.insert(out[o].words.end(), out[o].word.begin(),
                                out[o].word.begin() + out[o].n32);
            out[o].cyc.push_back(cycle);
        }
        for (int i = 0; i < n_in; i++) if (in_fire[i]) { in[i].cyc.push_back(cycle); in[i].idx++; }
        dut->clk = 1; dut->eval(); dut->clk = 0; dut->eval();
        if (max_out > 0) {
            bool done = true;
            for (int o = 0; o < n_out; o++) done = done && (long long)out[o].cyc.size() >= max_out;
            if (done) break;
        }
    }
    for (int i = 0; i < n_in; i++) spill(argv[5 + 3 * i], in[i].cyc.data(), 8, in[i].cyc.size());
    for (int o = 0; o < n_out; o++) {
        spill(argv[ob + 1 + 3 * o], out[o].words.data(), 4, out[o].words.size());
        spill(argv[ob + 2 + 3 * o], out[o].cyc.data(), 8, out[o].cyc.size());
    }
    delete dut;
    return 0;
}
