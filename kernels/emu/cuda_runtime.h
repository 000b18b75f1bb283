// Stand-in for CUDA's <cuda_runtime.h> in the CPU emulator (gpu/emu).
#include "cuda_emu.h"
