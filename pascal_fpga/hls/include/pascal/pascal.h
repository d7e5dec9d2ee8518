// pascal-fpga HLS library (architecture v2): everything a generated design includes.
//   types.h   stream words, token<CFG>, layer<CFG> (derived sizes), per-image loop counters
//   io.h      read_pixels (AXI -> pixel words), write_classes (classifier words -> AXI)
//   window.h  window_generator: the convolution feeder (line buffer -> tokens)
//   vector.h  vector_generator: the dense / classifier feeder
//   mvu.h     mvu<CFG, Emitter>: mvu_threshold (spiking layers), mvu_classifier,
//             mvu_accumulator (the main path and projection shortcut of a residual block)
//   pool.h    pool: max (OR of spikes) and sum pooling
//   residual.h fork (stream duplicator), add_join (residual add + thermometer emitter)
#ifndef PASCAL_PASCAL_H
#define PASCAL_PASCAL_H

#include "types.h"
#include "io.h"
#include "window.h"
#include "vector.h"
#include "mvu.h"
#include "pool.h"
#include "residual.h"

#endif
