// pascal-fpga HLS library: max pooling (an OR of spikes) and sum pooling, layer stream -> layer
// stream.
//
// Max pooling of thermometer trains is a frame-wise OR of the window's spikes, which is the max of
// their levels (it holds because every train is in thermometer order); for multi-bit frames (a pool
// right after the pixels, T = 1) the frame-wise max is the max of the pixels. Sum pooling (average
// pooling without its 1/K^2, which lives in the next layer's thresholds) adds the window's frames,
// frame by frame, into FB_OUT-bit frames. Words of PE channels in and out (CF = CH/PE per pixel).
//
// Schedule (pascal_fpga/hls/ARCHITECTURE.md): K-row circular line buffer of words (input row r in buffer row r % K);
//   for oy: R slots until rows_read = min(oy*STRIDE + K, IN_H) (IN_W*CF per row),
//           for ox, for cf: one W slot combining the K*K taps of group cf;
//   then R slots for the rows not read yet.
//   reads = IN_H*IN_W*CF, writes = OUT_H*OUT_W*CF, slots = reads + writes.
#ifndef PASCAL_POOL_H
#define PASCAL_POOL_H

#include "types.h"

namespace pascal {

// CFG: CH, IN_H, IN_W, OUT_H, OUT_W, K, STRIDE (no padding), T (frames per channel),
//      FB_IN, FB_OUT (bits per input / output frame), PE (channels per word in and out; divides CH),
//      SUM (0: max pooling, 1: sum pooling)
template <class CFG>
struct pool_types {
    static const unsigned CF = CFG::CH / CFG::PE;
    typedef ap_uint<CFG::PE * CFG::T * CFG::FB_IN> in_word;
    typedef ap_uint<CFG::PE * CFG::T * CFG::FB_OUT> out_word;
};

template <class CFG>
void pool(hls::stream<typename pool_types<CFG>::in_word> &in,
          hls::stream<typename pool_types<CFG>::out_word> &out) {
    typedef pool_types<CFG> TY;
    typedef typename TY::in_word in_word;
    typedef typename TY::out_word out_word;
    const unsigned K = CFG::K, CF = TY::CF;
    static_assert(CFG::CH % CFG::PE == 0, "PE must divide the channels");
    static_assert(CFG::OUT_H == (CFG::IN_H - CFG::K) / CFG::STRIDE + 1, "output height");
    static_assert(CFG::OUT_W == (CFG::IN_W - CFG::K) / CFG::STRIDE + 1, "output width");
    static_assert(CFG::SUM || CFG::FB_OUT == CFG::FB_IN, "max pooling keeps the frame width");
    static_assert(CFG::FB_OUT >= CFG::FB_IN, "output frames narrower than input frames");
    static_assert(CFG::PE * CFG::T * CFG::FB_OUT <= AP_INT_MAX_W,
                  "output word wider than AP_INT_MAX_W");

    in_word lines[CFG::K][CFG::IN_W][TY::CF];
#pragma HLS ARRAY_PARTITION variable = lines complete dim = 1
#pragma HLS ARRAY_PARTITION variable = lines cyclic factor = CFG::K dim = 2

    int need = rows_needed<CFG::IN_H, CFG::K, CFG::STRIDE, 0>(0);
    int rows_read = 0;
    unsigned row = 0;          // rows_read % K: where the next input row goes
    unsigned top = 0;          // (oy*STRIDE) mod K: the buffer row of the window's first row
    unsigned x = 0, c = 0;     // read position within the row: pixel, group
    unsigned oy = 0, ox = 0, cf = 0;
    bool reading = true;       // need(0) = K >= 1
    const unsigned SLOTS = (CFG::IN_H * CFG::IN_W + CFG::OUT_H * CFG::OUT_W) * TY::CF;
slots:
    for (unsigned i = 0; i < SLOTS; i++) {
#pragma HLS PIPELINE II = 1
        count<CFG, pool_stage>::slot();
        if (reading) {
            lines[row][x][c] = in.read();
            count<CFG, pool_stage>::read();
            if (++c == CF) {
                c = 0;
                if (++x == CFG::IN_W) {
                    x = 0;
                    row = row + 1 == K ? 0 : row + 1;
                    if (++rows_read == need) reading = false;
                }
            }
        } else {
            ap_uint<CFG::FB_OUT> part[CFG::PE][CFG::T];
#pragma HLS ARRAY_PARTITION variable = part complete dim = 0
            for (unsigned tap = 0; tap < K * K; tap++) {
#pragma HLS UNROLL
                unsigned r = top + tap / K;
                if (r >= K) r -= K;
                const in_word word = lines[r][ox * CFG::STRIDE + tap % K][cf];
                for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
                    for (unsigned t = 0; t < CFG::T; t++) {
#pragma HLS UNROLL
                        const ap_uint<CFG::FB_OUT> v = frame_of<CFG::T, CFG::FB_IN>(word, pe, t);
                        if (tap == 0) {
                            part[pe][t] = v;
                        } else if (CFG::SUM) {
                            part[pe][t] += v;
                        } else if (v > part[pe][t]) {
                            part[pe][t] = v;  // 1-bit frames: an OR
                        }
                    }
                }
            }
            out_word result = 0;
            for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
                for (unsigned t = 0; t < CFG::T; t++) {
#pragma HLS UNROLL
                    set_frame<CFG::T, CFG::FB_OUT>(result, pe, t, part[pe][t]);
                }
            }
            out.write(result);
            count<CFG, pool_stage>::write();
            if (++cf == CF) {
                cf = 0;
                if (++ox == CFG::OUT_W) {
                    ox = 0;
                    oy++;
                    top += CFG::STRIDE % K;
                    if (top >= K) top -= K;
                    need = oy == CFG::OUT_H
                               ? int(CFG::IN_H)
                               : rows_needed<CFG::IN_H, CFG::K, CFG::STRIDE, 0>(oy);
                    reading = rows_read < need;
                }
            }
        }
    }
}

}  // namespace pascal

#endif
