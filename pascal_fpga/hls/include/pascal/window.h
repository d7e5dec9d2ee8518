// pascal-fpga HLS library: the convolution feeder (window_generator), layer stream -> tokens.
//
// Input rows go into a K-row circular line buffer (input row r in buffer row r % K) as the
// windows need them; each window (output pixel, row-major) is sent as the tokens of its groups in
// vector order (tap (ky, kx) row-major, then channel group cf), then an END token.
// Zero-skip: only the groups that hold a spike are sent (a tap outside the image never is). One
// bit per stored group (nonzero) and one per window group not sent yet (pending) feed a priority
// encoder (first tap with a pending group, then its first group), so every slot sends a token.
// Dense: all K*K*CF groups are sent, taps outside the image with zero frames, active = T_IN.
//
// Schedule (pascal_fpga/hls/ARCHITECTURE.md), one slot per iteration of one loop per image:
//   for oy: R slots until rows_read = min(oy*STRIDE - PAD + K, IN_H) (IN_W*CF per row),
//           for ox: one W slot per token, one W slot for END;
//   then R slots for the rows not read yet.
//   reads = IN_H*IN_W*CF, writes = sum over windows (E_w + 1), slots = reads + writes.
#ifndef PASCAL_WINDOW_H
#define PASCAL_WINDOW_H

#include "types.h"

namespace pascal {

// CFG: a weighted-layer config (see layer<CFG> in types.h) of a convolution.
template <class CFG>
void window_generator(hls::stream<typename layer<CFG>::in_word> &in,
                      hls::stream<token<CFG> > &out) {
    typedef layer<CFG> L;
    typedef typename L::in_word word_t;
    typedef ap_uint<L::CF> flags_t;
    const unsigned K = CFG::K, CF = L::CF;
    static_assert(CFG::OUT_H == (CFG::IN_H + 2 * CFG::PAD - CFG::K) / CFG::STRIDE + 1,
                  "output height does not match the kernel, stride and padding");
    static_assert(CFG::OUT_W == (CFG::IN_W + 2 * CFG::PAD - CFG::K) / CFG::STRIDE + 1,
                  "output width does not match the kernel, stride and padding");
    static_assert(L::TAPS == CFG::K * CFG::K, "a convolution's window is its kernel");
    static_assert(CFG::ZERO_SKIP <= 1, "ZERO_SKIP is 0 or 1");

    word_t lines[CFG::K][CFG::IN_W][L::CF];
#pragma HLS ARRAY_PARTITION variable = lines complete dim = 1
    flags_t nonzero[CFG::K][CFG::IN_W];     // zero-skip: bit cf = the stored group is not 0
#pragma HLS ARRAY_PARTITION variable = nonzero complete dim = 1
#pragma HLS ARRAY_PARTITION variable = nonzero cyclic factor = CFG::K dim = 2
    flags_t pending[CFG::K][CFG::K];        // zero-skip: the window's groups not sent yet
#pragma HLS ARRAY_PARTITION variable = pending complete dim = 0

    int need = rows_needed<CFG::IN_H, CFG::K, CFG::STRIDE, CFG::PAD>(0);
    int rows_read = 0;
    unsigned row = 0;                       // rows_read % K: where the next input row goes
    unsigned top = (K - CFG::PAD % K) % K;  // (oy*STRIDE - PAD) mod K: buffer row of ky = 0
    unsigned x = 0, c = 0;                  // read position within the row: pixel, group
    flags_t pixel_nz = 0;                   // the flags of the pixel being read
    unsigned oy = 0, ox = 0;                // the current window
    unsigned dky = 0, dkx = 0, dcf = 0;     // dense: the next group of the window
    bool reading = need > 0;                // R slots (else W slots of the current window)
    bool fresh = true;                      // the current window has sent nothing yet
    bool done = false;
    const unsigned MIN_SLOTS = CFG::IN_H * CFG::IN_W * L::CF + L::WINDOWS;
    const unsigned MAX_SLOTS = CFG::IN_H * CFG::IN_W * L::CF + L::WINDOWS * (L::SF + 1);
slots:
    while (!done) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = MIN_SLOTS max = MAX_SLOTS
        count<CFG, feed_stage>::slot();
        if (reading) {
            const word_t word = in.read();
            count<CFG, feed_stage>::read();
            lines[row][x][c] = word;
            if (CFG::ZERO_SKIP) {
                flags_t flags = pixel_nz;
                flags[c] = word != 0;
                pixel_nz = flags;
                if (c == CF - 1) nonzero[row][x] = flags;
            }
            if (++c == CF) {
                c = 0;
                if (++x == CFG::IN_W) {
                    x = 0;
                    row = row + 1 == K ? 0 : row + 1;
                    if (++rows_read == need) {
                        reading = false;
                        done = oy == CFG::OUT_H;  // drained
                    }
                }
            }
        } else {
            const int y0 = int(oy * CFG::STRIDE) - int(CFG::PAD);
            const int x0 = int(ox * CFG::STRIDE) - int(CFG::PAD);
            bool send;
            unsigned ky = 0, kx = 0, cf = 0;
            if (CFG::ZERO_SKIP) {
                flags_t mask[CFG::K][CFG::K];
#pragma HLS ARRAY_PARTITION variable = mask complete dim = 0
                for (unsigned i = 0; i < K; i++) {
#pragma HLS UNROLL
                    unsigned r = top + i;
                    if (r >= K) r -= K;
                    const int iy = y0 + int(i);
                    for (unsigned j = 0; j < K; j++) {
#pragma HLS UNROLL
                        const int ix = x0 + int(j);
                        const bool inside =
                            iy >= 0 && iy < int(CFG::IN_H) && ix >= 0 && ix < int(CFG::IN_W);
                        mask[i][j] = !fresh ? pending[i][j]
                                            : inside ? nonzero[r][unsigned(ix)] : flags_t(0);
                    }
                }
                // priority encoder: the first tap with a pending group, then its first group
                send = false;
                for (unsigned t = K * K; t-- > 0;) {
#pragma HLS UNROLL
                    if (mask[t / K][t % K] != 0) {
                        send = true;
                        ky = t / K;
                        kx = t % K;
                    }
                }
                const flags_t groups = mask[ky][kx];
                for (unsigned b = CF; b-- > 0;) {
#pragma HLS UNROLL
                    if (groups[b]) cf = b;
                }
                for (unsigned i = 0; i < K; i++) {
#pragma HLS UNROLL
                    for (unsigned j = 0; j < K; j++) {
#pragma HLS UNROLL
                        flags_t left = mask[i][j];
                        if (send && i == ky && j == kx) left[cf] = 0;
                        pending[i][j] = left;
                    }
                }
            } else {
                send = dky < K;
                ky = dky;
                kx = dkx;
                cf = dcf;
                if (send && ++dcf == CF) {
                    dcf = 0;
                    if (++dkx == K) {
                        dkx = 0;
                        dky++;
                    }
                }
            }
            token<CFG> tk;
            tk.frames = 0;
            tk.sf = 0;
            tk.active = 0;
            tk.end = !send;
            if (send) {
                unsigned r = top + ky;
                if (r >= K) r -= K;
                const int iy = y0 + int(ky), ix = x0 + int(kx);
                const bool inside =
                    iy >= 0 && iy < int(CFG::IN_H) && ix >= 0 && ix < int(CFG::IN_W);
                const word_t word = inside ? lines[r][unsigned(ix)][cf] : word_t(0);
                tk.frames = word;
                tk.sf = (ky * K + kx) * CF + cf;
                tk.active = CFG::ZERO_SKIP ? active_frames<CFG::SIMD, CFG::T_IN, CFG::FB>(word)
                                           : typename L::active_t(CFG::T_IN);
                fresh = false;
            } else {  // END: on to the next window, reading the rows it needs first
                fresh = true;
                dky = 0;
                dkx = 0;
                dcf = 0;
                if (++ox == CFG::OUT_W) {
                    ox = 0;
                    oy++;
                    top += CFG::STRIDE % K;
                    if (top >= K) top -= K;
                    need = oy == CFG::OUT_H ? int(CFG::IN_H)
                                            : rows_needed<CFG::IN_H, CFG::K, CFG::STRIDE,
                                                          CFG::PAD>(oy);
                    reading = rows_read < need;
                    done = oy == CFG::OUT_H && !reading;
                }
            }
            out.write(tk);
            count<CFG, feed_stage>::write();
        }
    }
}

}  // namespace pascal

#endif
