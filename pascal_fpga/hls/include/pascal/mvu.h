// pascal-fpga HLS library: the matrix-vector unit of the weighted layers, tokens -> layer stream.
//
// One kernel, mvu<CFG, Emitter>, serves the spiking layers (mvu_threshold: PASCAL's thermometer
// emitter; mvu_threshold_binary: the QNN twin's, each channel's level in binary), the classifier
// (mvu_classifier: the accumulators themselves, from its bias) and the
// convolutions of a residual block whose outputs go to an add_join (mvu_accumulator: the
// accumulators from 0, conv or dense, every window and fold). Per window (input
// vector) it computes the NF folds of PE outputs one after the other. Fold 0 reads the window's
// tokens and keeps them in a window buffer; folds 1..NF-1 replay the buffer. A token of `active`
// frames takes `active` slots, one frame per slot: each lane's frame adds its weight to the PE
// accumulators (FB = 1: a spike adds the weight; FB > 1: weight * frame), SIMD lanes per slot.
//
// Schedule (pascal_fpga/hls/ARCHITECTURE.md), per window:
//   fold 0:       per token one R slot (store it, add frame 0), then active - 1 C slots;
//                 the END token: one RW slot (read it, emit and write fold 0's word);
//   folds 1..NF-1: sum(active) C slots replaying the buffer, then one W slot (emit, write).
//   reads = windows*(E + 1), writes = windows*NF, slots = sum over windows NF*(sum(active) + 1).
// The accumulators start each fold at Emitter::init (0, or the classifier's bias).
// Emitters: threshold_emitter (word: PE x T_OUT spikes), binary_threshold_emitter (word: PE
// levels of bits_for<T_OUT> bits), classifier_emitter and accumulator_emitter (word: PE
// accumulators of acc_t's width, two's complement).
#ifndef PASCAL_MVU_H
#define PASCAL_MVU_H

#include "types.h"

#ifndef __SYNTHESIS__
#include <cstdio>
#include <cstdlib>
#endif

namespace pascal {

// Emitter of the spiking layers: output spike k of channel o fires iff acc >= thresholds[o][k]
// (thresholds non-decreasing in k: a thermometer train). Word: PE channels x T_OUT one-bit frames,
// channel pe of the fold at bits [pe*T_OUT, (pe+1)*T_OUT). Table: thresholds [NF][PE][T_OUT].
template <class CFG>
struct threshold_emitter {
    typedef typename CFG::acc_t acc_t;
    typedef ap_uint<CFG::PE * CFG::T_OUT> word_t;
    static_assert(CFG::PE * CFG::T_OUT <= AP_INT_MAX_W, "output word wider than AP_INT_MAX_W");

    template <typename Table>
    static acc_t init(Table, unsigned, unsigned) {
#pragma HLS INLINE
        return 0;
    }
    template <typename Table>
    static word_t emit(Table thresholds, unsigned nf, const acc_t acc[CFG::PE]) {
#pragma HLS INLINE
        word_t word = 0;
        for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
            for (unsigned k = 0; k < CFG::T_OUT; k++) {
#pragma HLS UNROLL
                word[pe * CFG::T_OUT + k] = acc[pe] >= acc_t(thresholds[nf][pe][k]);
            }
        }
        return word;
    }
};

// Emitter of the QNN twin's thresholding layers: the same comparisons as threshold_emitter, but
// channel pe's T_OUT results leave as one binary number, the level = how many of its T_OUT
// thresholds acc reaches (count of k with acc >= thresholds[nf][pe][k]; for a non-decreasing row
// the number of spikes threshold_emitter would fire). Word: PE channels x OB bits, OB =
// bits_for<T_OUT> (the bits of T_OUT), channel pe at bits [pe*OB, (pe+1)*OB): one layer-stream
// frame per channel (T = 1, FB = OB). Table: thresholds [NF][PE][T_OUT], as threshold_emitter's.
template <class CFG>
struct binary_threshold_emitter {
    typedef typename CFG::acc_t acc_t;
    static const unsigned OB = bits_for<CFG::T_OUT>::value;
    typedef ap_uint<CFG::PE * OB> word_t;
    static_assert(CFG::PE * OB <= AP_INT_MAX_W, "output word wider than AP_INT_MAX_W");

    template <typename Table>
    static acc_t init(Table, unsigned, unsigned) {
#pragma HLS INLINE
        return 0;
    }
    template <typename Table>
    static word_t emit(Table thresholds, unsigned nf, const acc_t acc[CFG::PE]) {
#pragma HLS INLINE
        word_t word = 0;
        for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
            word.range(pe * OB + OB - 1, pe * OB) =
                threshold_count<CFG::T_OUT, acc_t>(acc[pe], thresholds[nf][pe]);
        }
        return word;
    }
};

// Emitter of the classifier: the accumulators start at the bias; word: PE accumulators of
// acc_t's width, two's complement, the pe-th at bits [pe*W, (pe+1)*W). Table: bias [NF][PE].
template <class CFG>
struct classifier_emitter {
    typedef typename CFG::acc_t acc_t;
    static const unsigned W = acc_t::width;
    typedef ap_uint<CFG::PE * W> word_t;
    static_assert(CFG::PE * W <= AP_INT_MAX_W, "output word wider than AP_INT_MAX_W");

    template <typename Table>
    static acc_t init(Table bias, unsigned nf, unsigned pe) {
#pragma HLS INLINE
        return acc_t(bias[nf][pe]);
    }
    template <typename Table>
    static word_t emit(Table, unsigned, const acc_t acc[CFG::PE]) {
#pragma HLS INLINE
        word_t word = 0;
        for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
            word.range(pe * W + W - 1, pe * W) = acc[pe].range(W - 1, 0);
        }
        return word;
    }
};

// Emitter of the accumulators of a residual block's convolution or dense layer (its main path or
// projection shortcut, read by add_join): the classifier's word (PE accumulators of acc_t's
// width), the accumulators starting at 0. No table (mvu_accumulator passes a dummy 0).
template <class CFG>
struct accumulator_emitter : classifier_emitter<CFG> {
    typedef typename CFG::acc_t acc_t;

    template <typename Table>
    static acc_t init(Table, unsigned, unsigned) {
#pragma HLS INLINE
        return 0;
    }
};

// The shared kernel. CFG: a weighted-layer config (types.h); Emitter: threshold_emitter<CFG>,
// binary_threshold_emitter<CFG>, classifier_emitter<CFG> or accumulator_emitter<CFG>;
// weights [NF*SF][PE][SIMD] (output nf*PE + pe, input sf*SIMD + s);
// table: the emitter's parameter array.
template <class CFG, class Emitter, typename WT, typename Table>
void mvu(hls::stream<token<CFG> > &in, hls::stream<typename Emitter::word_t> &out,
         const WT weights[layer<CFG>::NF * layer<CFG>::SF][CFG::PE][CFG::SIMD], Table table) {
#pragma HLS INLINE
    typedef layer<CFG> L;
    typedef typename CFG::acc_t acc_t;
    typedef typename CFG::weight_t weight_t;

    token<CFG> window[L::SF];  // fold 0's tokens, replayed by the other folds
    acc_t acc[CFG::PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
    for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
        acc[pe] = 0;
    }
    token<CFG> cur;            // the token whose frames are being added
    cur.frames = 0;
    cur.sf = 0;
    cur.active = 0;
    cur.end = false;
    unsigned nf = 0;           // the current fold
    unsigned t = 0;            // the frame of cur to add (0: take the next token)
    unsigned stored = 0;       // tokens in the window buffer
    unsigned replay = 0;       // folds 1..NF-1: the next buffered token
    unsigned windows = 0;
    bool fresh = true;         // the fold has added nothing yet: start from Emitter::init
#ifndef __SYNTHESIS__
    unsigned window_sf_last = 0;
#endif
    const unsigned MIN_SLOTS = L::WINDOWS * L::NF;
    const unsigned MAX_SLOTS = L::WINDOWS * L::NF * (L::SF * CFG::T_IN + 1);
slots:
    while (windows < L::WINDOWS) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = MIN_SLOTS max = MAX_SLOTS
        count<CFG, mvu_stage>::slot();
        bool add = false, emit = false;
        if (t != 0) {
            add = true;  // a further frame of cur (C slot)
        } else if (nf == 0) {
            const token<CFG> tk = in.read();  // R slot, or RW for END
            count<CFG, mvu_stage>::read();
#ifndef __SYNTHESIS__
            // the contract: a window's groups in vector order, each at most once, active >= 1
            if (!tk.end && ((stored > 0 && unsigned(tk.sf) <= unsigned(window_sf_last)) ||
                            unsigned(tk.sf) >= L::SF || tk.active == 0 ||
                            unsigned(tk.active) > CFG::T_IN)) {
                fprintf(stderr, "pascal::mvu: token out of order or malformed (sf %u, active %u)\n",
                        unsigned(tk.sf), unsigned(tk.active));
                abort();
            }
            window_sf_last = tk.sf;
#endif
            if (tk.end) {
                emit = true;
            } else {
                cur = tk;
                if (L::NF > 1) window[stored] = tk;
                stored++;
                add = true;
            }
        } else if (L::NF > 1 && replay < stored) {
            cur = window[replay++];  // C slot
            add = true;
        } else {
            emit = true;  // W slot
        }

        acc_t base[CFG::PE];
#pragma HLS ARRAY_PARTITION variable = base complete
        for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
            base[pe] = fresh ? Emitter::init(table, nf, pe) : acc[pe];
        }
        if (add) {
            const unsigned row = nf * L::SF + unsigned(cur.sf);
            for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
                acc_t sum = base[pe];
                for (unsigned s = 0; s < CFG::SIMD; s++) {
#pragma HLS UNROLL
                    const weight_t w = weight_t(weights[row][pe][s]);
                    const ap_uint<CFG::FB> f = frame_of<CFG::T_IN, CFG::FB>(cur.frames, s, t);
                    if (CFG::FB == 1) {
                        if (f != 0) sum += w;
                    } else {
                        sum += w * ap_int<CFG::FB + 1>(f);
                    }
                }
                acc[pe] = sum;
            }
            fresh = false;
            t = t + 1 < unsigned(cur.active) ? t + 1 : 0;
        }
        if (emit) {
            out.write(Emitter::emit(table, nf, base));
            count<CFG, mvu_stage>::write();
            fresh = true;
            replay = 0;
            if (++nf == L::NF) {
                nf = 0;
                stored = 0;
                windows++;
            }
        }
    }
}

// A spiking convolution or dense layer: thresholds [NF][PE][T_OUT].
template <class CFG, typename WT, typename TT>
void mvu_threshold(hls::stream<token<CFG> > &in,
                   hls::stream<typename threshold_emitter<CFG>::word_t> &out,
                   const WT weights[layer<CFG>::NF * layer<CFG>::SF][CFG::PE][CFG::SIMD],
                   const TT thresholds[layer<CFG>::NF][CFG::PE][CFG::T_OUT]) {
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 2
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 3
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 2
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 3
    mvu<CFG, threshold_emitter<CFG> >(in, out, weights, thresholds);
}

// A thresholding convolution or dense layer of the QNN twin: thresholds [NF][PE][T_OUT] as for
// mvu_threshold; writes each channel's level in binary (binary_threshold_emitter).
template <class CFG, typename WT, typename TT>
void mvu_threshold_binary(hls::stream<token<CFG> > &in,
                          hls::stream<typename binary_threshold_emitter<CFG>::word_t> &out,
                          const WT weights[layer<CFG>::NF * layer<CFG>::SF][CFG::PE][CFG::SIMD],
                          const TT thresholds[layer<CFG>::NF][CFG::PE][CFG::T_OUT]) {
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 2
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 3
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 2
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 3
    mvu<CFG, binary_threshold_emitter<CFG> >(in, out, weights, thresholds);
}

// The classifier: bias [NF][PE]; writes NF words of PE accumulators per image.
template <class CFG, typename WT, typename BT>
void mvu_classifier(hls::stream<token<CFG> > &in,
                    hls::stream<typename classifier_emitter<CFG>::word_t> &out,
                    const WT weights[layer<CFG>::NF * layer<CFG>::SF][CFG::PE][CFG::SIMD],
                    const BT bias[layer<CFG>::NF][CFG::PE]) {
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 2
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 3
#pragma HLS ARRAY_PARTITION variable = bias complete dim = 2
    static_assert(layer<CFG>::DENSE, "the classifier is a dense layer");
    mvu<CFG, classifier_emitter<CFG> >(in, out, weights, bias);
}

// The accumulators of a convolution or dense layer (a residual block's main path or projection
// shortcut): per window, per fold, a word of PE accumulators of acc_t's width starting at 0;
// writes WINDOWS*NF words per image (window-major, fold-minor: the layer-stream order).
template <class CFG, typename WT>
void mvu_accumulator(hls::stream<token<CFG> > &in,
                     hls::stream<typename accumulator_emitter<CFG>::word_t> &out,
                     const WT weights[layer<CFG>::NF * layer<CFG>::SF][CFG::PE][CFG::SIMD]) {
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 2
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 3
    mvu<CFG, accumulator_emitter<CFG> >(in, out, weights, 0);
}

}  // namespace pascal

#endif
