// pascal-fpga HLS library: max pooling (an OR of spikes) and sum pooling of spike trains.
//
// Max pooling of thermometer trains is a per-timestep OR of the window's spikes, which is the max
// of their levels; it holds only because every train is in thermometer order. For multi-bit frames
// (a pool right after the pixels, T = 1) the frame-wise max is the max of the pixels. Sum pooling
// (average pooling without its 1/K^2, which lives in the next layer's thresholds) counts the
// window's spikes per timestep. Schedule as the convolution: read the rows the window needs, then
// NF * K * K cycles per output pixel (PE channels per cycle, all T frames at once).
#ifndef PASCAL_POOL_H
#define PASCAL_POOL_H

#include "types.h"

namespace pascal {

// CFG: CH, IN_H, IN_W, OUT_H, OUT_W, K, STRIDE (no padding), T (frames per channel),
//      FB_IN, FB_OUT (bits per input / output frame), PE (channels per cycle, divides CH),
//      SUM (0: max pooling, 1: sum pooling)
template <class CFG>
struct pool_types {
    static const unsigned NF = CFG::CH / CFG::PE;
    typedef ap_uint<CFG::CH * CFG::T * CFG::FB_IN> in_word;
    typedef ap_uint<CFG::T * CFG::FB_IN> element;  // one channel's frames
    typedef ap_uint<CFG::CH * CFG::T * CFG::FB_OUT> out_word;
};

template <class CFG>
void spiking_pool(hls::stream<typename pool_types<CFG>::in_word> &in,
                  hls::stream<typename pool_types<CFG>::out_word> &out) {
    typedef pool_types<CFG> TY;
    static_assert(CFG::CH % CFG::PE == 0, "PE must divide the channels");
    static_assert(CFG::OUT_H == (CFG::IN_H - CFG::K) / CFG::STRIDE + 1, "output height");
    static_assert(CFG::OUT_W == (CFG::IN_W - CFG::K) / CFG::STRIDE + 1, "output width");
    static_assert(CFG::SUM || CFG::FB_OUT == CFG::FB_IN, "max pooling keeps the frame width");
    static_assert(CFG::FB_OUT >= CFG::FB_IN, "output frames narrower than input frames");

    typename TY::element lines[CFG::K][CFG::IN_W][CFG::CH];
#pragma HLS ARRAY_PARTITION variable = lines complete dim = 1
#pragma HLS ARRAY_PARTITION variable = lines cyclic factor = CFG::PE dim = 3
    ap_uint<CFG::FB_OUT> part[CFG::PE][CFG::T];
#pragma HLS ARRAY_PARTITION variable = part complete dim = 0
    int rows_read = 0;

rows:
    for (unsigned oy = 0; oy < CFG::OUT_H; oy++) {
        const int need = int(oy * CFG::STRIDE + CFG::K);
        read_rows<CFG, CFG::K, CFG::IN_W, CFG::CH, CFG::T * CFG::FB_IN>(in, lines, rows_read,
                                                                      need);
    pixels:
        for (unsigned ox = 0; ox < CFG::OUT_W; ox++) {
            typename TY::out_word result = 0;
            unsigned tap = 0, nf = 0;
        compute:
            for (unsigned i = 0; i < TY::NF * CFG::K * CFG::K; i++) {
#pragma HLS PIPELINE II = 1
                PASCAL_COUNT(compute);
                const unsigned iy = oy * CFG::STRIDE + tap / CFG::K;
                const unsigned ix = ox * CFG::STRIDE + tap % CFG::K;
                for (unsigned pe = 0; pe < CFG::PE; pe++) {
                    const typename TY::element e = lines[iy % CFG::K][ix][nf * CFG::PE + pe];
                    for (unsigned t = 0; t < CFG::T; t++) {
                        const ap_uint<CFG::FB_OUT> v =
                            e.range(t * CFG::FB_IN + CFG::FB_IN - 1, t * CFG::FB_IN);
                        if (tap == 0) {
                            part[pe][t] = v;
                        } else if (CFG::SUM) {
                            part[pe][t] += v;
                        } else if (v > part[pe][t]) {
                            part[pe][t] = v;  // for 1-bit frames: an OR
                        }
                    }
                }
                if (tap == CFG::K * CFG::K - 1) {
                    for (unsigned pe = 0; pe < CFG::PE; pe++) {
                        for (unsigned t = 0; t < CFG::T; t++) {
                            set_frame<CFG::T, CFG::FB_OUT>(result, nf * CFG::PE + pe, t,
                                                           part[pe][t]);
                        }
                    }
                    tap = 0;
                    nf++;
                } else {
                    tap++;
                }
            }
            out.write(result);
        }
    }
    // drain the rows below the last window
    read_rows<CFG, CFG::K, CFG::IN_W, CFG::CH, CFG::T * CFG::FB_IN>(in, lines, rows_read,
                                                                  CFG::IN_H);
}

}  // namespace pascal

#endif
