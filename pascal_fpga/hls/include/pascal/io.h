// pascal-fpga HLS library: the AXI-Stream edges of the design.
//
// In: one AXI word per input pixel, its channels packed from bit 0 (channel c at bits
// [c*IN_BITS, (c+1)*IN_BITS)), pixels row-major, padded to whole bytes. read_pixels turns each into
// CH/GROUP layer-stream words of GROUP channels (T = 1 frame of FB = IN_BITS bits).
// Out: per image, CLASSES words of 32 bits (the classifier accumulators sign-extended, class 0
// first), then one word with the class (the first argmax), with TLAST set.
#ifndef PASCAL_IO_H
#define PASCAL_IO_H

#include "types.h"

namespace pascal {

// CFG: PIXELS (H * W), CH, IN_BITS, AXI_BITS (a multiple of 8 >= CH * IN_BITS),
//      GROUP (channels per output word = the first layer's SIMD; divides CH)
// Schedule: for each pixel, CH/GROUP W slots; the AXI word is read in the pixel's first slot.
// reads = PIXELS (AXI words), writes = slots = PIXELS*CH/GROUP.
template <class CFG>
void read_pixels(hls::stream<ap_axiu<CFG::AXI_BITS, 0, 0, 0> > &in,
                 hls::stream<ap_uint<CFG::GROUP * CFG::IN_BITS> > &out) {
    static_assert(CFG::AXI_BITS % 8 == 0 && CFG::AXI_BITS >= CFG::CH * CFG::IN_BITS,
                  "AXI words are whole bytes and hold one pixel");
    static_assert(CFG::CH % CFG::GROUP == 0, "GROUP must divide the channels");
    static_assert(CFG::GROUP * CFG::IN_BITS <= AP_INT_MAX_W, "word wider than AP_INT_MAX_W");
    const unsigned CF = CFG::CH / CFG::GROUP, W = CFG::GROUP * CFG::IN_BITS;
    ap_uint<CFG::AXI_BITS> pixel = 0;
    unsigned cf = 0;
slots:
    for (unsigned i = 0; i < CFG::PIXELS * CF; i++) {
#pragma HLS PIPELINE II = 1
        count<CFG, input_stage>::slot();
        if (cf == 0) {
            pixel = in.read().data;
            count<CFG, input_stage>::read();
        }
        out.write(pixel.range(cf * W + W - 1, cf * W));
        count<CFG, input_stage>::write();
        cf = cf + 1 == CF ? 0 : cf + 1;
    }
}

// CFG: CLASSES, ACC_BITS (<= 32, the classifier's acc_t width), PE (the classifier's PE)
// Schedule: NF = CLASSES/PE R slots reading the classifier's words, then CLASSES + 1 slots writing
// the AXI words. reads = NF, writes = CLASSES + 1, slots = NF + CLASSES + 1.
template <class CFG>
void write_classes(hls::stream<ap_uint<CFG::PE * CFG::ACC_BITS> > &in,
                   hls::stream<ap_axiu<32, 0, 0, 0> > &out) {
    static_assert(CFG::ACC_BITS <= 32, "classifier accumulators wider than 32 bits");
    static_assert(CFG::CLASSES % CFG::PE == 0, "PE must divide the classes");
    const unsigned NF = CFG::CLASSES / CFG::PE, W = CFG::ACC_BITS;
    ap_int<CFG::ACC_BITS> acc[CFG::CLASSES];
#pragma HLS ARRAY_PARTITION variable = acc complete
    for (unsigned c = 0; c < CFG::CLASSES; c++) {
#pragma HLS UNROLL
        acc[c] = 0;
    }
    ap_int<CFG::ACC_BITS> best = 0;
    unsigned best_class = 0;
slots:
    for (unsigned i = 0; i < NF + CFG::CLASSES + 1; i++) {
#pragma HLS PIPELINE II = 1
        count<CFG, output_stage>::slot();
        if (i < NF) {
            const ap_uint<CFG::PE * CFG::ACC_BITS> word = in.read();
            count<CFG, output_stage>::read();
            for (unsigned pe = 0; pe < CFG::PE; pe++) {
#pragma HLS UNROLL
                acc[i * CFG::PE + pe].range(W - 1, 0) = word.range(pe * W + W - 1, pe * W);
            }
        } else {
            const unsigned c = i - NF;
            ap_axiu<32, 0, 0, 0> axi;
            axi.keep = -1;
            axi.strb = -1;
            if (c < CFG::CLASSES) {
                const ap_int<CFG::ACC_BITS> a = acc[c];
                if (c == 0 || a > best) {  // strictly greater: the first maximum wins
                    best = a;
                    best_class = c;
                }
                axi.data = ap_int<32>(a);
                axi.last = 0;
            } else {
                axi.data = best_class;
                axi.last = 1;
            }
            out.write(axi);
            count<CFG, output_stage>::write();
        }
    }
}

}  // namespace pascal

#endif
