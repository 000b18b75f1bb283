// Stand-in for CUDA's <cuda_bf16.h> in the CPU emulator (gpu/emu).
#include "cuda_emu.h"
