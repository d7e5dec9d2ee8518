// pascal-fpga HLS library (architecture v2): stream words, tokens, counters and small helpers.
//
// Layer streams (between layers) carry words of G channels of one pixel, each channel with its T
// frames of FB bits: channel g, frame t at bits [(g*T + t)*FB, (g*T + t + 1)*FB). Pixel-major,
// channel-group minor: a pixel's C channels travel as C/G consecutive words. G is the producer's PE
// and the consumer's SIMD (a pool's PE); there are no width converters. Spike frames (FB = 1) are
// thermometer trains (spike in frame t iff t < level); after a sum pool FB > 1 (spike counts per
// frame); the first layer's input has T = 1 and FB = the pixel bits. In the QNN twin every layer
// stream has T = 1: each channel's level in binary, FB = bits of the largest level.
//
// Token streams (inside a weighted layer, feeder -> MVU) carry one input group (SIMD lanes) per
// token, only the groups that hold a spike when the layer skips zeros, and an END token after the
// last group of each window (input vector): see token<CFG>.
#ifndef PASCAL_TYPES_H
#define PASCAL_TYPES_H

#ifndef AP_INT_MAX_W
#define AP_INT_MAX_W 4096
#endif

#include "ap_int.h"
#include "hls_stream.h"

#if defined(__SYNTHESIS__) || defined(PASCAL_USE_AP_AXI)
#include "ap_axi_sdata.h"
#else
// C simulation without the Vitis headers: a stand-in with the fields of Vitis' ap_axiu that the
// design uses (data and last; keep and strb are set for completeness).
template <int D, int U, int TI, int TD>
struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<1> last;
};
#endif

// The storage type of a parameter array of `bits`-bit signed values: ap_int<bits> in synthesis
// (ROMs of the exact width); in C simulation the C integer type `ctype` (which holds the same
// values), because g++ compiles large initializers of ap_int very slowly.
// PASCAL_UPARAM: the same for unsigned values (ap_uint<bits>; e.g. add_join's shift amounts).
#ifdef __SYNTHESIS__
#define PASCAL_PARAM(bits, ctype) ap_int<bits>
#define PASCAL_UPARAM(bits, ctype) ap_uint<bits>
#else
#define PASCAL_PARAM(bits, ctype) ctype
#define PASCAL_UPARAM(bits, ctype) ctype
#endif

namespace pascal {

// ---------------------------------------------------------------------------------------------
// Compile-time helpers

// bits of an unsigned value (at least 1)
template <unsigned long long N>
struct bits_for { static const unsigned value = N < 2 ? 1 : 1 + bits_for<N / 2>::value; };
template <>
struct bits_for<0> { static const unsigned value = 1; };

template <unsigned A, unsigned B>
struct min_of { static const unsigned value = A < B ? A : B; };

// ---------------------------------------------------------------------------------------------
// Per-image loop counters (build with -DPASCAL_LOOP_COUNTERS): every stage counts its stream
// reads, stream writes and loop iterations ("slots") as pascal_fpga/hls/ARCHITECTURE.md defines them, keyed by the
// stage's config struct and one of the stage tags below. Without the flag (and always in
// synthesis) they compile to nothing.
struct input_stage {};   // read_pixels
struct feed_stage {};    // window_generator, vector_generator
struct mvu_stage {};     // mvu_threshold, mvu_classifier, mvu_accumulator
struct pool_stage {};    // pool
struct output_stage {};  // write_classes
struct fork_stage {};    // fork (residual.h)
struct add_stage {};     // add_join (residual.h)

#if defined(PASCAL_LOOP_COUNTERS) && !defined(__SYNTHESIS__)
#define PASCAL_COUNTING 1
#else
#define PASCAL_COUNTING 0
#endif

#if PASCAL_COUNTING
template <class CFG, class STAGE>
struct loop_counters {
    static unsigned long long reads, writes, slots;
};
template <class CFG, class STAGE> unsigned long long loop_counters<CFG, STAGE>::reads = 0;
template <class CFG, class STAGE> unsigned long long loop_counters<CFG, STAGE>::writes = 0;
template <class CFG, class STAGE> unsigned long long loop_counters<CFG, STAGE>::slots = 0;
#endif

// count<CFG, STAGE>::read() etc.: one call per event, inside the stage's pipelined loop.
template <class CFG, class STAGE>
struct count {
    static void read() {
#pragma HLS INLINE
#if PASCAL_COUNTING
        ++loop_counters<CFG, STAGE>::reads;
#endif
    }
    static void write() {
#pragma HLS INLINE
#if PASCAL_COUNTING
        ++loop_counters<CFG, STAGE>::writes;
#endif
    }
    static void slot() {
#pragma HLS INLINE
#if PASCAL_COUNTING
        ++loop_counters<CFG, STAGE>::slots;
#endif
    }
};

// ---------------------------------------------------------------------------------------------
// Weighted layers (convolution, dense, classifier): the derived sizes of a config struct.
//
// CFG (static const unsigned unless noted):
//   IN_CH, IN_H, IN_W     input map (dense: flattened pixel-major, index (y*IN_W + x)*IN_CH + c)
//   OUT_CH, OUT_H, OUT_W  output map (dense and classifier: OUT_H = OUT_W = 1)
//   K, STRIDE, PAD        square kernel, stride, symmetric zero padding (dense: 1, 1, 0)
//   T_IN, FB              input frames per channel and bits per frame
//   T_OUT                 output frames = thresholds per channel (classifier: 1, unused;
//                         mvu_threshold_binary: thresholds per channel, one frame out)
//   PE                    output channels per fold (divides OUT_CH)
//   SIMD                  input channels per group (divides IN_CH)
//   ZERO_SKIP             1: event-driven (only groups with a spike are sent), 0: dense
//   weight_t, acc_t       ap_int types of a weight and of an accumulator (and threshold)
//
// A dense layer is one window over the whole input map; a convolution's window is its K x K
// kernel. The two agree whenever both could apply (K = 1, STRIDE = 1, PAD = 0 and a 1 x 1 output
// is a 1 x 1 input), so a dense config is recognised by that geometry.
template <class CFG>
struct layer {
    static const bool DENSE = CFG::K == 1 && CFG::STRIDE == 1 && CFG::PAD == 0 &&
                              CFG::OUT_H == 1 && CFG::OUT_W == 1;
    static const unsigned CF = CFG::IN_CH / CFG::SIMD;  // groups per input pixel
    static const unsigned TAPS = DENSE ? CFG::IN_H * CFG::IN_W : CFG::K * CFG::K;
    static const unsigned SF = TAPS * CF;                // groups per window (input vector)
    static const unsigned NF = CFG::OUT_CH / CFG::PE;    // output folds
    static const unsigned WINDOWS = CFG::OUT_H * CFG::OUT_W;
    static const unsigned GROUP_BITS = CFG::SIMD * CFG::T_IN * CFG::FB;
    typedef ap_uint<GROUP_BITS> in_word;                 // one input group: SIMD lanes x T_IN x FB
    typedef ap_uint<bits_for<SF - 1>::value> sf_t;
    typedef ap_uint<bits_for<CFG::T_IN>::value> active_t;

    static_assert(CFG::IN_CH % CFG::SIMD == 0, "SIMD must divide the input channels");
    static_assert(CFG::OUT_CH % CFG::PE == 0, "PE must divide the output channels");
    static_assert(CFG::T_IN >= 1 && CFG::FB >= 1 && CFG::T_OUT >= 1, "empty spike trains");
    static const unsigned TOKEN_BITS =
        GROUP_BITS + bits_for<SF - 1>::value + bits_for<CFG::T_IN>::value + 1;
    static_assert(TOKEN_BITS <= AP_INT_MAX_W, "token wider than AP_INT_MAX_W");
};

// One group of an input vector, or the END of a window (end = 1, active = 0, frames = 0, sf = 0).
//   frames  SIMD lanes x T_IN frames x FB bits, the layout of a layer-stream word with G = SIMD
//   sf      the group's index 0..SF-1 in the input vector (group j: tap j / CF, channels
//           (j % CF)*SIMD ..; lane s is input index j*SIMD + s)
//   active  1 + the last frame in which some lane is nonzero (0: no lane has a nonzero frame);
//           for thermometer spikes the group's largest level. The MVU spends `active` slots on it.
template <class CFG>
struct token {
    typename layer<CFG>::in_word frames;
    typename layer<CFG>::sf_t sf;
    typename layer<CFG>::active_t active;
    bool end;
};

// ---------------------------------------------------------------------------------------------
// Word helpers

// The value of channel c, frame t of a word of T frames of FB bits per channel.
template <unsigned T, unsigned FB, typename Word>
inline ap_uint<FB> frame_of(const Word &word, unsigned c, unsigned t) {
#pragma HLS INLINE
    return word.range((c * T + t) * FB + FB - 1, (c * T + t) * FB);
}

// Set channel c, frame t of a word.
template <unsigned T, unsigned FB, typename Word>
inline void set_frame(Word &word, unsigned c, unsigned t, ap_uint<FB> value) {
#pragma HLS INLINE
    word.range((c * T + t) * FB + FB - 1, (c * T + t) * FB) = value;
}

// `active` of a group word of LANES channels: 1 + the last frame that is nonzero in some lane, 0
// if every frame is 0.
template <unsigned LANES, unsigned T, unsigned FB, typename Word>
inline ap_uint<bits_for<T>::value> active_frames(const Word &word) {
#pragma HLS INLINE
    ap_uint<bits_for<T>::value> active = 0;
    for (unsigned t = 0; t < T; t++) {
#pragma HLS UNROLL
        bool any = false;
        for (unsigned s = 0; s < LANES; s++) {
#pragma HLS UNROLL
            any |= frame_of<T, FB>(word, s, t) != 0;
        }
        if (any) active = t + 1;
    }
    return active;
}

// A level in binary (the QNN twin's binary emitters): how many of the N thresholds row[0..N-1]
// `value` reaches, count of k with value >= row[k], in bits_for<N> bits. Every comparison is
// counted (no assumption that the row is sorted), so it equals the number of spikes the
// thermometer emitters fire for the same value and row. Value: an ap_int; Th: its type, which
// each threshold is converted to before the comparison (as the thermometer emitters do).
template <unsigned N, typename Th, typename Value, typename Row>
inline ap_uint<bits_for<N>::value> threshold_count(const Value &value, const Row &row) {
#pragma HLS INLINE
    ap_uint<bits_for<N>::value> level = 0;
    for (unsigned k = 0; k < N; k++) {
#pragma HLS UNROLL
        if (value >= Th(row[k])) level++;
    }
    return level;
}

// The rows of the input a sliding window needs before output row oy: min(oy*STRIDE - PAD + K, H)
// (at least 0).
template <unsigned H, unsigned K, unsigned STRIDE, unsigned PAD>
inline int rows_needed(unsigned oy) {
#pragma HLS INLINE
    const int need = int(oy * STRIDE) - int(PAD) + int(K);
    return need < 0 ? 0 : (need > int(H) ? int(H) : need);
}

}  // namespace pascal

#endif
