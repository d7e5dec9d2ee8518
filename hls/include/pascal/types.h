// pascal-fpga HLS library: common types and the layout of the spike streams.
//
// Stream layout (the time order of spikes, DESIGN.md 4): PIXEL-MAJOR. One stream word carries one
// pixel (one spatial position) with all of its channels, and for each channel all T of its
// timesteps ("frames"): channel c, frame t occupies bits [(c*T + t)*FB, (c*T + t + 1)*FB).
// Between spiking layers FB = 1 and the T bits of a channel are its spike train in thermometer
// order (spike in frame t iff t < level). The first layer's input has T = 1 and FB = the pixel bits;
// after a sum pool each frame carries the number of spikes in the pooling window.
//
// Why pixel-major: a PASCAL neuron emits its first output spike only after it has integrated all of
// its input timesteps, so a time-major stream (whole frames, one timestep after another) would make
// every layer keep the membrane of its whole output map (H*W*C accumulators) until the last input
// frame. Pixel-major lets a layer slide its window once over K-row line buffers of spike words and
// keep only the PE accumulators of the output pixel it is computing: line buffers of T-bit
// elements instead of membrane maps. The price is that each timestep costs a cycle inside the
// layer (T_in passes over the window, adds only), which the cycle model counts.
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
// (ROMs and constants of the exact width); in C simulation the C integer type `ctype` (which holds
// the same values), because g++ compiles large static initializers of ap_int very slowly.
#ifdef __SYNTHESIS__
#define PASCAL_PARAM(bits, ctype) ap_int<bits>
#else
#define PASCAL_PARAM(bits, ctype) ctype
#endif

namespace pascal {

// Loop-iteration counters for the C simulation (build with -DPASCAL_LOOP_COUNTERS): each pipelined
// loop body counts its iterations per layer (CFG), so that the cycle model's trip counts can be
// checked against the code. They compile to nothing otherwise.
#ifdef PASCAL_LOOP_COUNTERS
template <class CFG>
struct loop_counters {
    static unsigned long long read, compute, write;
};
template <class CFG> unsigned long long loop_counters<CFG>::read = 0;
template <class CFG> unsigned long long loop_counters<CFG>::compute = 0;
template <class CFG> unsigned long long loop_counters<CFG>::write = 0;
#define PASCAL_COUNT(loop) (++::pascal::loop_counters<CFG>::loop)
#else
#define PASCAL_COUNT(loop) ((void)0)
#endif

// ceil(a / b) and the bits of an unsigned value, at compile time
template <unsigned A, unsigned B>
struct ceil_div { static const unsigned value = (A + B - 1) / B; };

template <unsigned long long N>
struct bits_for { static const unsigned value = N < 2 ? 1 : 1 + bits_for<N / 2>::value; };
template <>
struct bits_for<0> { static const unsigned value = 1; };

// The value of channel c, frame t of a pixel word (see the layout above).
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

// acc += w * frame, with adds only where the frame is a spike (FB = 1); a small multiply for
// pixels (the direct-coded first layer) and for sum-pooled spike counts.
template <unsigned FB, typename Acc, typename W>
inline void accumulate(Acc &acc, const W &w, const ap_uint<FB> &frame) {
#pragma HLS INLINE
    if (FB == 1) {
        if (frame[0]) acc += w;
    } else {
        acc += w * frame;
    }
}

// Read input rows into a K-row circular line buffer until `rows_read` reaches `need`, one word
// per cycle, each word's CH channels unpacked into E-bit elements (one channel's frames each).
// Shared by the sliding-window layers (convolution, pooling); CFG names the layer's counters.
template <class CFG, unsigned K, unsigned W, unsigned CH, unsigned E, typename Word>
void read_rows(hls::stream<Word> &in, ap_uint<E> lines[K][W][CH], int &rows_read, int need) {
#pragma HLS INLINE
read_rows:
    for (; rows_read < need; rows_read++) {
    read_row:
        for (unsigned x = 0; x < W; x++) {
#pragma HLS PIPELINE II = 1
            PASCAL_COUNT(read);
            const Word word = in.read();
            for (unsigned c = 0; c < CH; c++) {
                lines[rows_read % K][x][c] = word.range(c * E + E - 1, c * E);
            }
        }
    }
}

}  // namespace pascal

#endif
