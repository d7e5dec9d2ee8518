// pascal-fpga: what the one-module harnesses (stage.cpp, ports.cpp) share: the Verilator
// includes, a port's words to and from 32-bit limbs, and reading a whole file ('-': none).
// pascal_fpga/hw/rtlsim.py puts this text where a harness says @COMMON@.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "Vdut.h"
#include "verilated.h"

template <class T> static void put(T &port, const uint32_t *w, unsigned n) {
    uint64_t v = w[0];
    if (n > 1 && sizeof(T) > 4) v |= (uint64_t)w[1] << 32;
    port = (T)v;
}
template <std::size_t N> static void put(VlWide<N> &port, const uint32_t *w, unsigned n) {
    for (std::size_t i = 0; i < N; i++) port[i] = i < n ? w[i] : 0;
}
template <class T> static void get(const T &port, uint32_t *w, unsigned n) {
    uint64_t v = port;
    w[0] = (uint32_t)v;
    if (n > 1) w[1] = (uint32_t)(v >> 32);
}
template <std::size_t N> static void get(const VlWide<N> &port, uint32_t *w, unsigned n) {
    for (std::size_t i = 0; i < N && i < n; i++) w[i] = port[i];
}

static std::vector<uint8_t> slurp(const char *path) {
    std::vector<uint8_t> data;
    if (path[0] == '-') return data;
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "harness: cannot open %s\n", path); exit(2); }
    int c;
    while ((c = fgetc(f)) != EOF) data.push_back((uint8_t)c);
    fclose(f);
    return data;
}
