// pascal-fpga HLS library: the dense-layer feeder (vector_generator), layer stream -> tokens.
//
// The input vector of a dense layer or the classifier is the whole input map, IN_H*IN_W pixels of
// CF words each, in stream order; each word is one group of SIMD channels (the producer's PE =
// this layer's SIMD), so word j is group j. Nothing is buffered: a group is sent in the slot that
// reads it.
//
// Schedule (pascal_fpga/hls/ARCHITECTURE.md): for j in 0..SF-1 one slot reading word j and, if the group is sent
// (zero-skip: active > 0; dense: always, with active = T_IN), writing its token (RW, else R);
// then one W slot for END. reads = SF, writes = E + 1, slots = SF + 1.
#ifndef PASCAL_VECTOR_H
#define PASCAL_VECTOR_H

#include "types.h"

namespace pascal {

// CFG: a weighted-layer config (see layer<CFG> in types.h) of a dense layer or the classifier.
template <class CFG>
void vector_generator(hls::stream<typename layer<CFG>::in_word> &in,
                      hls::stream<token<CFG> > &out) {
    typedef layer<CFG> L;
    static_assert(L::DENSE, "a dense config has K = 1, STRIDE = 1, PAD = 0 and a 1 x 1 output");
    static_assert(CFG::ZERO_SKIP <= 1, "ZERO_SKIP is 0 or 1");
slots:
    for (unsigned j = 0; j <= L::SF; j++) {
#pragma HLS PIPELINE II = 1
        count<CFG, feed_stage>::slot();
        token<CFG> tk;
        tk.frames = 0;
        tk.sf = 0;
        tk.active = 0;
        tk.end = j == L::SF;
        bool send = tk.end;
        if (j < L::SF) {
            const typename L::in_word word = in.read();
            count<CFG, feed_stage>::read();
            tk.frames = word;
            tk.sf = j;
            tk.active = CFG::ZERO_SKIP ? active_frames<CFG::SIMD, CFG::T_IN, CFG::FB>(word)
                                       : typename L::active_t(CFG::T_IN);
            send = tk.active != 0;
        }
        if (send) {
            out.write(tk);
            count<CFG, feed_stage>::write();
        }
    }
}

}  // namespace pascal

#endif
