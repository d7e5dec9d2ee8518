// pascal-fpga HLS library: the spiking dense layer and the classifier.
//
// The input is IN_PIX stream words of IN_CH channels each (a flattened feature map arrives pixel by
// pixel; a dense layer's output is one word), stored as FANIN = IN_PIX * IN_CH elements of T_IN
// frames. Input index i = pix * IN_CH + c: the weights' columns are in this (pixel-major) order.
// Schedule: IN_PIX cycles to read the input, then NF * SF * T_IN cycles (II = 1), SIMD inputs and
// PE outputs per cycle, one input frame at a time: each spike adds its weight.
#ifndef PASCAL_DENSE_H
#define PASCAL_DENSE_H

#include "types.h"

namespace pascal {

// CFG: IN_PIX, IN_CH (input words and channels per word), OUT_CH, T_IN, FB (bits per input frame),
//      T_OUT (thresholds per output channel; unused by the classifier), PE (divides OUT_CH),
//      SIMD (divides IN_PIX * IN_CH), weight_t, acc_t (exact worst-case width)
template <class CFG>
struct dense_types {
    static const unsigned FANIN = CFG::IN_PIX * CFG::IN_CH;
    static const unsigned NF = CFG::OUT_CH / CFG::PE;
    static const unsigned SF = FANIN / CFG::SIMD;
    typedef ap_uint<CFG::IN_CH * CFG::T_IN * CFG::FB> in_word;
    typedef ap_uint<CFG::T_IN * CFG::FB> element;
    typedef ap_uint<CFG::OUT_CH * CFG::T_OUT> out_word;
    typedef ap_uint<CFG::OUT_CH * CFG::acc_t::width> acc_word;
};

// Read one image's input vector into buf.
template <class CFG>
void dense_read(hls::stream<typename dense_types<CFG>::in_word> &in,
                typename dense_types<CFG>::element buf[dense_types<CFG>::FANIN]) {
    typedef dense_types<CFG> TY;
read:
    for (unsigned p = 0; p < CFG::IN_PIX; p++) {
#pragma HLS PIPELINE II = 1
        PASCAL_COUNT(read);
        const typename TY::in_word word = in.read();
        for (unsigned c = 0; c < CFG::IN_CH; c++) {
            buf[p * CFG::IN_CH + c] =
                word.range((c + 1) * CFG::T_IN * CFG::FB - 1, c * CFG::T_IN * CFG::FB);
        }
    }
}

// The accumulators of PE outputs of fold nf, one input fold and frame per cycle; calls emit(nf,
// acc) after the last input frame of each fold.
template <class CFG, typename WT, typename BT, class Emit>
void dense_compute(const typename dense_types<CFG>::element buf[dense_types<CFG>::FANIN],
                   const WT weights[dense_types<CFG>::NF * dense_types<CFG>::SF][CFG::PE][CFG::SIMD],
                   const BT init[dense_types<CFG>::NF][CFG::PE], Emit &emit) {
    typedef dense_types<CFG> TY;
    typename CFG::acc_t acc[CFG::PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
    unsigned t = 0, sf = 0, nf = 0;
compute:
    for (unsigned i = 0; i < TY::NF * TY::SF * CFG::T_IN; i++) {
#pragma HLS PIPELINE II = 1
        PASCAL_COUNT(compute);
        if (sf == 0 && t == 0) {
            for (unsigned pe = 0; pe < CFG::PE; pe++) acc[pe] = typename CFG::acc_t(init[nf][pe]);
        }
        ap_uint<CFG::FB> frames[CFG::SIMD];
#pragma HLS ARRAY_PARTITION variable = frames complete
        for (unsigned s = 0; s < CFG::SIMD; s++) {
            const typename TY::element e = buf[sf * CFG::SIMD + s];
            frames[s] = e.range(t * CFG::FB + CFG::FB - 1, t * CFG::FB);
        }
        for (unsigned pe = 0; pe < CFG::PE; pe++) {
            for (unsigned s = 0; s < CFG::SIMD; s++) {
                accumulate<CFG::FB>(acc[pe],
                                    typename CFG::weight_t(weights[nf * TY::SF + sf][pe][s]),
                                    frames[s]);
            }
        }
        if (sf == TY::SF - 1 && t == CFG::T_IN - 1) emit(nf, acc);
        if (++t == CFG::T_IN) {
            t = 0;
            if (++sf == TY::SF) {
                sf = 0;
                nf++;
            }
        }
    }
}

template <class CFG, typename TT>
struct threshold_emitter {
    typename dense_types<CFG>::out_word word;
    const TT (*thresholds)[CFG::PE][CFG::T_OUT];
    void operator()(unsigned nf, const typename CFG::acc_t acc[CFG::PE]) {
#pragma HLS INLINE
        for (unsigned pe = 0; pe < CFG::PE; pe++) {
            for (unsigned k = 0; k < CFG::T_OUT; k++) {
                word[(nf * CFG::PE + pe) * CFG::T_OUT + k] =
                    acc[pe] >= typename CFG::acc_t(thresholds[nf][pe][k]);
            }
        }
    }
};

template <class CFG, typename WT, typename TT>
void spiking_dense(hls::stream<typename dense_types<CFG>::in_word> &in,
                   hls::stream<typename dense_types<CFG>::out_word> &out,
                   const WT weights[dense_types<CFG>::NF * dense_types<CFG>::SF][CFG::PE][CFG::SIMD],
                   const TT thresholds[dense_types<CFG>::NF][CFG::PE][CFG::T_OUT]) {
    typedef dense_types<CFG> TY;
    static_assert(CFG::OUT_CH % CFG::PE == 0, "PE must divide the output channels");
    static_assert(TY::FANIN % CFG::SIMD == 0, "SIMD must divide the fan-in");
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 2
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 3
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 2
#pragma HLS ARRAY_PARTITION variable = thresholds complete dim = 3
    typename TY::element buf[TY::FANIN];
#pragma HLS ARRAY_PARTITION variable = buf cyclic factor = CFG::SIMD
    static const int zero[TY::NF][CFG::PE] = {};
    dense_read<CFG>(in, buf);
    threshold_emitter<CFG, TT> emit;
    emit.word = 0;
    emit.thresholds = thresholds;
    dense_compute<CFG>(buf, weights, zero, emit);
    out.write(emit.word);
}

template <class CFG>
struct accumulator_emitter {
    typename dense_types<CFG>::acc_word word;
    void operator()(unsigned nf, const typename CFG::acc_t acc[CFG::PE]) {
#pragma HLS INLINE
        const unsigned W = CFG::acc_t::width;
        for (unsigned pe = 0; pe < CFG::PE; pe++) {
            word.range((nf * CFG::PE + pe + 1) * W - 1, (nf * CFG::PE + pe) * W) =
                acc[pe].range(W - 1, 0);
        }
    }
};

// The classifier: accumulators start at the integer bias; its output word holds OUT_CH
// accumulators of acc_t's width (two's complement), class c at bits [c*W, (c+1)*W).
template <class CFG, typename WT, typename BT>
void classifier(hls::stream<typename dense_types<CFG>::in_word> &in,
                hls::stream<typename dense_types<CFG>::acc_word> &out,
                const WT weights[dense_types<CFG>::NF * dense_types<CFG>::SF][CFG::PE][CFG::SIMD],
                const BT bias[dense_types<CFG>::NF][CFG::PE]) {
    typedef dense_types<CFG> TY;
    static_assert(CFG::OUT_CH % CFG::PE == 0, "PE must divide the classes");
    static_assert(TY::FANIN % CFG::SIMD == 0, "SIMD must divide the fan-in");
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 2
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 3
#pragma HLS ARRAY_PARTITION variable = bias complete dim = 2
    typename TY::element buf[TY::FANIN];
#pragma HLS ARRAY_PARTITION variable = buf cyclic factor = CFG::SIMD
    dense_read<CFG>(in, buf);
    accumulator_emitter<CFG> emit;
    emit.word = 0;
    dense_compute<CFG>(buf, weights, bias, emit);
    out.write(emit.word);
}

}  // namespace pascal

#endif
