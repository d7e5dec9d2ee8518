// pascal-fpga HLS library: everything a generated design includes.
#ifndef PASCAL_PASCAL_H
#define PASCAL_PASCAL_H

#include "types.h"
#include "conv.h"
#include "pool.h"
#include "dense.h"
#include "io.h"

#endif
