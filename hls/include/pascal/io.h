// pascal-fpga HLS library: the AXI-Stream edges of the design.
//
// In: one AXI word per input pixel, its channels packed from bit 0 (channel c at bits
// [c*IN_BITS, (c+1)*IN_BITS)), pixels in row-major order; the word is padded to whole bytes.
// Out: per image, CLASSES words of 32 bits (the classifier accumulators, sign-extended, class 0
// first), then one word with the class (the first argmax), with TLAST set.
#ifndef PASCAL_IO_H
#define PASCAL_IO_H

#include "types.h"

namespace pascal {

// CFG: PIXELS (H * W), CH, IN_BITS, AXI_BITS (a multiple of 8 >= CH * IN_BITS)
template <class CFG>
void read_pixels(hls::stream<ap_axiu<CFG::AXI_BITS, 0, 0, 0> > &in,
                 hls::stream<ap_uint<CFG::CH * CFG::IN_BITS> > &out) {
    static_assert(CFG::AXI_BITS % 8 == 0 && CFG::AXI_BITS >= CFG::CH * CFG::IN_BITS,
                  "AXI words are whole bytes and hold one pixel");
pixels:
    for (unsigned p = 0; p < CFG::PIXELS; p++) {
#pragma HLS PIPELINE II = 1
        PASCAL_COUNT(read);
        const ap_axiu<CFG::AXI_BITS, 0, 0, 0> word = in.read();
        out.write(word.data.range(CFG::CH * CFG::IN_BITS - 1, 0));
    }
}

// CFG: CLASSES, ACC_BITS (<= 32)
template <class CFG>
void write_classes(hls::stream<ap_uint<CFG::CLASSES * CFG::ACC_BITS> > &in,
                   hls::stream<ap_axiu<32, 0, 0, 0> > &out) {
    static_assert(CFG::ACC_BITS <= 32, "classifier accumulators wider than 32 bits");
    const ap_uint<CFG::CLASSES * CFG::ACC_BITS> word = in.read();
    ap_int<CFG::ACC_BITS> best = 0;
    unsigned best_class = 0;
classes:
    for (unsigned c = 0; c <= CFG::CLASSES; c++) {
#pragma HLS PIPELINE II = 1
        PASCAL_COUNT(write);
        ap_axiu<32, 0, 0, 0> axi;
        axi.keep = -1;
        axi.strb = -1;
        if (c < CFG::CLASSES) {
            ap_int<CFG::ACC_BITS> acc;
            acc.range(CFG::ACC_BITS - 1, 0) =
                word.range((c + 1) * CFG::ACC_BITS - 1, c * CFG::ACC_BITS);
            if (c == 0 || acc > best) {  // strictly greater: the first maximum wins
                best = acc;
                best_class = c;
            }
            axi.data = ap_int<32>(acc);
            axi.last = 0;
        } else {
            axi.data = best_class;
            axi.last = 1;
        }
        out.write(axi);
    }
}

}  // namespace pascal

#endif
