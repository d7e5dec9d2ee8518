// pascal-fpga HLS library: the two stages of a residual block, fork (a stream duplicated into the
// main path and the shortcut) and add_join (main + shortcut, then PASCAL's thermometer emitter;
// add_join_binary: the QNN twin's, each channel's level in binary).
//
// fork: one RW slot per word: it reads word k and writes it to both outputs in the same slot.
//   reads = writes = slots = WORDS per image (the two writes of a slot count as one write).
// add_join: one RW slot per output word k (pixel k / NF, fold k % NF): it reads main word k and
//   shortcut word k in the same slot and writes output word k.
//   reads = writes = slots = OUT_H*OUT_W*NF per image (the two reads of a slot count as one read).
// Both write every output in the slot that reads the input(s): a fork stalls while either output
// FIFO is full, an add while either input FIFO is empty (the shortcut FIFO must be deep enough to
// hold what the main path has not consumed yet, or the block deadlocks).
#ifndef PASCAL_RESIDUAL_H
#define PASCAL_RESIDUAL_H

#include "types.h"

#ifndef __SYNTHESIS__
#include <cstdio>
#include <cstdlib>
#endif

namespace pascal {

// ---------------------------------------------------------------------------------------------
// fork. CFG: WORDS (words per image), BITS (word width).
template <class CFG>
void fork(hls::stream<ap_uint<CFG::BITS> > &in, hls::stream<ap_uint<CFG::BITS> > &out_main,
          hls::stream<ap_uint<CFG::BITS> > &out_short) {
    static_assert(CFG::BITS >= 1 && CFG::BITS <= AP_INT_MAX_W, "word wider than AP_INT_MAX_W");
slots:
    for (unsigned k = 0; k < CFG::WORDS; k++) {
#pragma HLS PIPELINE II = 1
        count<CFG, fork_stage>::slot();
        const ap_uint<CFG::BITS> word = in.read();
        count<CFG, fork_stage>::read();
        out_main.write(word);
        out_short.write(word);
        count<CFG, fork_stage>::write();
    }
}

// ---------------------------------------------------------------------------------------------
// add_join. CFG (static const unsigned unless noted):
//   CH, OUT_H, OUT_W   the block's output map (= the shortcut's map); PE channels per word
//                      (divides CH; NF = CH / PE words per pixel)
//   PE                 the main path's PE = the shortcut stream's group = the output's group
//   ACC_BITS           bits of a main accumulator (the main path's mvu_accumulator acc_t width)
//   SC_ACC             0: identity shortcut (a layer stream), 1: projection (accumulators)
//   T_SC, FB_SC        identity: frames per channel and bits per frame of the shortcut stream
//   SC_BITS            projection: bits of a shortcut accumulator
//                      (the members of the unused kind are still required; any value >= 1)
//   N_BITS             width of the sum n and of a threshold
//   T_OUT              output frames = thresholds per channel
//   SH_BITS            bits of a shift amount
//   thr_t              typedef ap_int<N_BITS>
// Main word: PE accumulators of ACC_BITS bits, two's complement, lane pe at bits
// [pe*ACC_BITS, (pe+1)*ACC_BITS). Shortcut word: identity, PE channels x T_SC frames x FB_SC bits
// (channel g, frame t at [(g*T_SC + t)*FB_SC, ...)), v = the sum of the channel's frames;
// projection, PE accumulators of SC_BITS bits, two's complement, v = the accumulator.
// Channel o = nf*PE + pe: n = (acc << shift_main[nf][pe]) + (v << shift_short[nf][pe]) in
// ap_int<N_BITS> (the compiler guarantees that nothing overflows and that every shift amount is
// below N_BITS; C simulation checks the latter), output spike t fires iff
// n >= thresholds[nf][pe][t] (non-decreasing in t: a thermometer train). Output word: PE channels
// x T_OUT one-bit frames, channel pe, frame t at bit pe*T_OUT + t (the layer-stream layout).
// add_join_binary (the QNN twin) is the same stage with the level of channel pe, the count of t
// with n >= thresholds[nf][pe][t], in binary: output word PE channels x OB bits, OB =
// bits_for<T_OUT> (the bits of T_OUT), channel pe at [pe*OB, (pe+1)*OB) (one frame of OB bits).
template <class CFG>
struct add_types {
    static const unsigned NF = CFG::CH / CFG::PE;
    static const unsigned PIXELS = CFG::OUT_H * CFG::OUT_W;
    static const unsigned MAIN_BITS = CFG::PE * CFG::ACC_BITS;
    static const unsigned SHORT_BITS =
        CFG::SC_ACC ? CFG::PE * CFG::SC_BITS : CFG::PE * CFG::T_SC * CFG::FB_SC;
    static const unsigned OUT_BITS = CFG::PE * CFG::T_OUT;
    typedef ap_uint<MAIN_BITS> main_word;
    typedef ap_uint<SHORT_BITS> short_word;
    typedef ap_uint<OUT_BITS> out_word;
    typedef ap_int<CFG::N_BITS> n_t;
    typedef ap_uint<CFG::SH_BITS> shift_t;
    // identity: the largest sum of a channel's frames, T_SC * (2^FB_SC - 1)
    static const unsigned long long LEVEL_MAX =
        CFG::FB_SC >= 64 ? ~0ULL : (unsigned long long)CFG::T_SC * ((1ULL << CFG::FB_SC) - 1);
    typedef ap_uint<bits_for<LEVEL_MAX>::value> level_t;
};

// v of shortcut lane pe (a separate template per kind, so that only the used one is compiled)
template <class CFG, bool ACC>
struct shortcut_value;
template <class CFG>
struct shortcut_value<CFG, true> {  // projection: a two's complement accumulator of SC_BITS bits
    static typename add_types<CFG>::n_t get(const typename add_types<CFG>::short_word &sw,
                                            unsigned pe) {
#pragma HLS INLINE
        const unsigned S = CFG::SC_BITS;
        ap_int<CFG::SC_BITS> sc;
        sc.range(S - 1, 0) = sw.range(pe * S + S - 1, pe * S);
        return sc;
    }
};
template <class CFG>
struct shortcut_value<CFG, false> {  // identity: the sum of the channel's T_SC frames
    static typename add_types<CFG>::n_t get(const typename add_types<CFG>::short_word &sw,
                                            unsigned pe) {
#pragma HLS INLINE
        typename add_types<CFG>::level_t level = 0;
        for (unsigned t = 0; t < CFG::T_SC; t++) {
#pragma HLS UNROLL
            level += frame_of<CFG::T_SC, CFG::FB_SC>(sw, pe, t);
        }
        return level;
    }
};

// What add_join writes for channel pe of its word, from n and the channel's T_OUT thresholds:
// add_spikes, the thermometer frames (bit pe*T_OUT + t = n >= row[t]); add_levels, the level in
// binary (bits [pe*OB, (pe+1)*OB) = the count of t with n >= row[t]).
template <class CFG>
struct add_spikes {
    typedef typename add_types<CFG>::out_word word_t;
    static_assert(add_types<CFG>::OUT_BITS <= AP_INT_MAX_W, "word wider than AP_INT_MAX_W");

    template <typename Row>
    static void put(word_t &word, unsigned pe, const typename add_types<CFG>::n_t &n,
                    const Row &row) {
#pragma HLS INLINE
        typedef typename CFG::thr_t thr_t;
        for (unsigned t = 0; t < CFG::T_OUT; t++) {
#pragma HLS UNROLL
            word[pe * CFG::T_OUT + t] = n >= thr_t(row[t]);
        }
    }
};
template <class CFG>
struct add_levels {
    static const unsigned OB = bits_for<CFG::T_OUT>::value;
    typedef ap_uint<CFG::PE * OB> word_t;
    static_assert(CFG::PE * OB <= AP_INT_MAX_W, "word wider than AP_INT_MAX_W");

    template <typename Row>
    static void put(word_t &word, unsigned pe, const typename add_types<CFG>::n_t &n,
                    const Row &row) {
#pragma HLS INLINE
        word.range(pe * OB + OB - 1, pe * OB) =
            threshold_count<CFG::T_OUT, typename CFG::thr_t>(n, row);
    }
};

// The stage itself, shared by add_join and add_join_binary (Out: add_spikes or add_levels).
template <class CFG, class Out, typename TT, typename SMT, typename SST>
void add_join_core(hls::stream<typename add_types<CFG>::main_word> &main_in,
                   hls::stream<typename add_types<CFG>::short_word> &shortcut_in,
                   hls::stream<typename Out::word_t> &out,
                   const TT thresholds[add_types<CFG>::NF][CFG::PE][CFG::T_OUT],
                   const SMT shift_main[add_types<CFG>::NF][CFG::PE],
                   const SST shift_short[add_types<CFG>::NF][CFG::PE]) {
#pragma HLS INLINE
    typedef add_types<CFG> TY;
    typedef typename TY::n_t n_t;
    typedef typename TY::shift_t shift_t;
    typedef typename CFG::thr_t thr_t;
    const unsigned A = CFG::ACC_BITS;
    static_assert(CFG::CH % CFG::PE == 0, "PE must divide the channels");
    static_assert(CFG::SC_ACC <= 1, "SC_ACC is 0 or 1");
    static_assert(CFG::T_OUT >= 1 && CFG::ACC_BITS >= 1 && CFG::N_BITS >= 1 &&
                      CFG::SH_BITS >= 1 && CFG::T_SC >= 1 && CFG::FB_SC >= 1 &&
                      CFG::SC_BITS >= 1,
                  "empty field");
    static_assert(CFG::SC_ACC || CFG::FB_SC < 64, "shortcut frames of 64 bits or more");
    static_assert(thr_t::width == CFG::N_BITS, "thr_t is ap_int<N_BITS>");
    static_assert(TY::MAIN_BITS <= AP_INT_MAX_W && TY::SHORT_BITS <= AP_INT_MAX_W,
                  "word wider than AP_INT_MAX_W");

    unsigned nf = 0;
slots:
    for (unsigned k = 0; k < TY::PIXELS * TY::NF; k++) {
#pragma HLS PIPELINE II = 1
        count<CFG, add_stage>::slot();
        const typename TY::main_word mw = main_in.read();
        const typename TY::short_word sw = shortcut_in.read();
        count<CFG, add_stage>::read();
        typename Out::word_t word = 0;
        for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
            ap_int<CFG::ACC_BITS> acc;
            acc.range(A - 1, 0) = mw.range(pe * A + A - 1, pe * A);
            const n_t v = shortcut_value<CFG, CFG::SC_ACC != 0>::get(sw, pe);
            const n_t m = acc;
#ifndef __SYNTHESIS__
            // the contract: a shift never reaches N_BITS (the C shift would be undefined)
            if (unsigned(shift_t(shift_main[nf][pe])) >= CFG::N_BITS ||
                unsigned(shift_t(shift_short[nf][pe])) >= CFG::N_BITS) {
                fprintf(stderr, "pascal::add_join: shift of N_BITS or more\n");
                abort();
            }
#endif
            const n_t n = (m << shift_t(shift_main[nf][pe])) + (v << shift_t(shift_short[nf][pe]));
            Out::put(word, pe, n, thresholds[nf][pe]);
        }
        out.write(word);
        count<CFG, add_stage>::write();
        nf = nf + 1 == TY::NF ? 0 : nf + 1;
    }
}

// The add of PASCAL's residual block: T_OUT thermometer frames per channel out.
template <class CFG, typename TT, typename SMT, typename SST>
void add_join(hls::stream<typename add_types<CFG>::main_word> &main_in,
              hls::stream<typename add_types<CFG>::short_word> &shortcut_in,
              hls::stream<typename add_types<CFG>::out_word> &out,
              const TT thresholds[add_types<CFG>::NF][CFG::PE][CFG::T_OUT],
              const SMT shift_main[add_types<CFG>::NF][CFG::PE],
              const SST shift_short[add_types<CFG>::NF][CFG::PE]) {
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 2
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 3
#pragma HLS ARRAY_PARTITION variable = shift_main complete dim = 2
#pragma HLS ARRAY_PARTITION variable = shift_short complete dim = 2
    add_join_core<CFG, add_spikes<CFG> >(main_in, shortcut_in, out, thresholds, shift_main,
                                         shift_short);
}

// The add of the QNN twin's residual block: each channel's level in binary, bits_for<T_OUT> bits.
template <class CFG, typename TT, typename SMT, typename SST>
void add_join_binary(hls::stream<typename add_types<CFG>::main_word> &main_in,
                     hls::stream<typename add_types<CFG>::short_word> &shortcut_in,
                     hls::stream<typename add_levels<CFG>::word_t> &out,
                     const TT thresholds[add_types<CFG>::NF][CFG::PE][CFG::T_OUT],
                     const SMT shift_main[add_types<CFG>::NF][CFG::PE],
                     const SST shift_short[add_types<CFG>::NF][CFG::PE]) {
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 2
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 3
#pragma HLS ARRAY_PARTITION variable = shift_main complete dim = 2
#pragma HLS ARRAY_PARTITION variable = shift_short complete dim = 2
    add_join_core<CFG, add_levels<CFG> >(main_in, shortcut_in, out, thresholds, shift_main,
                                         shift_short);
}

}  // namespace pascal

#endif
