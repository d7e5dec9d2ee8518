// pascal-fpga HLS library: the spiking convolution (and the pixel-fed first convolution).
//
// One call processes one image. Input rows are read into a K-row circular line buffer as the
// sliding window needs them; for every output pixel, PE output channels at a time, the layer
// passes T_IN times over the window, SIMD input channels per cycle, and each spike adds its weight
// to the membrane accumulator (a pixel frame, FB > 1, multiplies). After the last input frame the
// thermometer emitter compares the accumulator with the channel's T_OUT integer thresholds: output
// spike k fires iff acc >= threshold[k], which is PASCAL's count #{k : acc >= T_k} in thermometer
// order. Schedule per output row: read the new input rows (one word per cycle), then compute the
// row's pixels (NF * SF * T_IN cycles each, II = 1).
#ifndef PASCAL_CONV_H
#define PASCAL_CONV_H

#include "types.h"

namespace pascal {

// CFG holds (all static const unsigned unless noted):
//   IN_CH, IN_H, IN_W    input channels and size
//   OUT_CH, OUT_H, OUT_W output channels and size
//   K, STRIDE, PAD       square kernel, stride, symmetric zero padding
//   T_IN                 input frames per channel (the previous layer's L; 1 for pixels)
//   FB                   bits per input frame (1: spikes; pixel bits for the first layer)
//   T_OUT                output timesteps = L = thresholds per channel
//   PE                   output channels computed at once (divides OUT_CH)
//   SIMD                 input channels consumed at once (divides IN_CH)
//   weight_t             ap_int of the weight bits
//   acc_t                ap_int wide enough for every accumulator and threshold (exact worst case)
template <class CFG>
struct conv_types {
    static const unsigned NF = CFG::OUT_CH / CFG::PE;     // output channel folds
    static const unsigned CF = CFG::IN_CH / CFG::SIMD;    // input channel folds
    static const unsigned SF = CFG::K * CFG::K * CF;      // input folds per output pixel
    typedef ap_uint<CFG::IN_CH * CFG::T_IN * CFG::FB> in_word;
    typedef ap_uint<CFG::T_IN * CFG::FB> element;  // one channel's frames
    typedef ap_uint<CFG::OUT_CH * CFG::T_OUT> out_word;
};

// Parameter arrays: WT and TT are ap_int of the exact widths in synthesis and plain C integers in
// the C simulation (see PASCAL_PARAM in types.h); values are cast to weight_t / acc_t on use.
template <class CFG, typename WT, typename TT>
void spiking_conv(hls::stream<typename conv_types<CFG>::in_word> &in,
                  hls::stream<typename conv_types<CFG>::out_word> &out,
                  const WT weights[conv_types<CFG>::NF * conv_types<CFG>::SF][CFG::PE][CFG::SIMD],
                  const TT thresholds[conv_types<CFG>::NF][CFG::PE][CFG::T_OUT]) {
    typedef conv_types<CFG> TY;
    static_assert(CFG::OUT_CH % CFG::PE == 0, "PE must divide the output channels");
    static_assert(CFG::IN_CH % CFG::SIMD == 0, "SIMD must divide the input channels");
    static_assert(CFG::OUT_H == (CFG::IN_H + 2 * CFG::PAD - CFG::K) / CFG::STRIDE + 1,
                  "output height does not match the kernel, stride and padding");
    static_assert(CFG::OUT_W == (CFG::IN_W + 2 * CFG::PAD - CFG::K) / CFG::STRIDE + 1,
                  "output width does not match the kernel, stride and padding");
    static_assert(CFG::T_IN >= 1 && CFG::T_OUT >= 1 && CFG::FB >= 1, "empty spike trains");
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 2
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 3
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 2
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 3

    // the line buffer holds each pixel's channels unpacked, SIMD channels readable per cycle
    typename TY::element lines[CFG::K][CFG::IN_W][CFG::IN_CH];
#pragma HLS ARRAY_PARTITION variable = lines complete dim = 1
#pragma HLS ARRAY_PARTITION variable = lines cyclic factor = CFG::SIMD dim = 3
    typename CFG::acc_t acc[CFG::PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
    int rows_read = 0;

rows:
    for (unsigned oy = 0; oy < CFG::OUT_H; oy++) {
        int need = int(oy * CFG::STRIDE) - int(CFG::PAD) + int(CFG::K);
        if (need > int(CFG::IN_H)) need = CFG::IN_H;
        read_rows<CFG, CFG::K, CFG::IN_W, CFG::IN_CH, CFG::T_IN * CFG::FB>(in, lines, rows_read,
                                                                         need);
    pixels:
        for (unsigned ox = 0; ox < CFG::OUT_W; ox++) {
            typename TY::out_word result = 0;
            unsigned t = 0, sf = 0, nf = 0;
        compute:
            for (unsigned i = 0; i < TY::NF * TY::SF * CFG::T_IN; i++) {
#pragma HLS PIPELINE II = 1
                PASCAL_COUNT(compute);
                if (sf == 0 && t == 0) {
                    for (unsigned pe = 0; pe < CFG::PE; pe++) acc[pe] = 0;
                }
                const unsigned tap = sf / TY::CF, cf = sf % TY::CF;
                const int iy = int(oy * CFG::STRIDE) - int(CFG::PAD) + int(tap / CFG::K);
                const int ix = int(ox * CFG::STRIDE) - int(CFG::PAD) + int(tap % CFG::K);
                const bool inside = iy >= 0 && iy < int(CFG::IN_H) && ix >= 0 && ix < int(CFG::IN_W);
                ap_uint<CFG::FB> frames[CFG::SIMD];
#pragma HLS ARRAY_PARTITION variable = frames complete
                for (unsigned s = 0; s < CFG::SIMD; s++) {
                    const typename TY::element e =
                        inside ? lines[iy % CFG::K][ix][cf * CFG::SIMD + s] : typename TY::element(0);
                    frames[s] = e.range(t * CFG::FB + CFG::FB - 1, t * CFG::FB);
                }
                for (unsigned pe = 0; pe < CFG::PE; pe++) {
                    for (unsigned s = 0; s < CFG::SIMD; s++) {
                        accumulate<CFG::FB>(
                            acc[pe], typename CFG::weight_t(weights[nf * TY::SF + sf][pe][s]),
                            frames[s]);
                    }
                }
                if (sf == TY::SF - 1 && t == CFG::T_IN - 1) {  // emit: thermometer order
                    for (unsigned pe = 0; pe < CFG::PE; pe++) {
                        for (unsigned k = 0; k < CFG::T_OUT; k++) {
                            result[(nf * CFG::PE + pe) * CFG::T_OUT + k] =
                                acc[pe] >= typename CFG::acc_t(thresholds[nf][pe][k]);
                        }
                    }
                }
                if (++t == CFG::T_IN) {
                    t = 0;
                    if (++sf == TY::SF) {
                        sf = 0;
                        nf++;
                    }
                }
            }
            out.write(result);
        }
    }
    // drain the rows below the last window
    read_rows<CFG, CFG::K, CFG::IN_W, CFG::IN_CH, CFG::T_IN * CFG::FB>(in, lines, rows_read,
                                                                     CFG::IN_H);
}

}  // namespace pascal

#endif
