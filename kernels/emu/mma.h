// Stand-in for CUDA's <mma.h> in the CPU emulator (gpu/emu).
#include "cuda_emu.h"
