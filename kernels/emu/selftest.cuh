// selftest.cuh: kernels that test the emulator itself (gpu/emu
// emu_test.go), not part of the GPU backend. Compiled only into the
// emulator; written in plain CUDA so they would mean the same on a GPU.
#ifndef KERNELS_EMU_SELFTEST_CUH
#define KERNELS_EMU_SELFTEST_CUH

// emu_test_shfl: for every thread t (lane l = t % 32) of a 1-D block,
// out[4t+0] = __shfl_sync(src = (l*7+3) % 32, value t),
// out[4t+1] = __shfl_xor_sync(mask 5, value t),
// out[4t+2] = __shfl_down_sync(delta 3, width 16, value t),
// out[4t+3] = __shfl_up_sync(delta 2, width 8, value t).
extern "C" __global__ void emu_test_shfl(float* out, long long n) {
    int t = threadIdx.x;
    int l = t % 32;
    float v = (float)t;
    float a = __shfl_sync(0xffffffffu, v, (l * 7 + 3) % 32);
    float b = __shfl_xor_sync(0xffffffffu, v, 5);
    float c = __shfl_down_sync(0xffffffffu, v, 3, 16);
    float d = __shfl_up_sync(0xffffffffu, v, 2, 8);
    if (t < n) {
        out[4 * t + 0] = a;
        out[4 * t + 1] = b;
        out[4 * t + 2] = c;
        out[4 * t + 3] = d;
    }
}

// emu_test_reverse: out[i] = in[n-1-i] through shared memory; with
// barrier == 0 the __syncthreads between the write and the read is left
// out, which the emulator's scheduling must expose as a wrong result.
extern "C" __global__ void emu_test_reverse(float* out, const float* in, long long n, long long barrier) {
    __shared__ float s[1024];
    int t = threadIdx.x;
    if (t < n) s[t] = in[t];
    if (barrier) __syncthreads();
    if (t < n) out[t] = s[n - 1 - t];
}

// emu_test_deadlock: thread 0 waits at a barrier the others never reach
// (they wait at a different one): a bug the emulator must report.
extern "C" __global__ void emu_test_deadlock(float* out) {
    if (threadIdx.x == 0) {
        __syncthreads();
        out[0] = 1.0f;
    } else {
        __syncwarp();
        __syncthreads();
        __syncthreads();
    }
}

// emu_test_early_exit: half the threads return before the barrier, which
// (as on sm_70+) must not hang the others; out[t] = in[t] + in[t ^ 1] for
// even t through shared memory.
extern "C" __global__ void emu_test_early_exit(float* out, const float* in) {
    __shared__ float s[1024];
    int t = threadIdx.x;
    s[t] = in[t];
    if (t % 2 == 1) return;
    __syncthreads();
    out[t] = s[t] + s[t + 1];
}

// emu_test_dyn_shared: dynamic shared memory of blockDim.x floats; out[b*n+t]
// = sum of in[b*n .. b*n+n) computed by a block reduction, per block.
extern "C" __global__ void emu_test_dyn_shared(float* out, const float* in) {
    DYN_SHARED(float, s);
    int t = threadIdx.x, n = blockDim.x;
    long long base = (long long)blockIdx.x * n;
    s[t] = in[base + t];
    __syncthreads();
    for (int st = 1; st < n; st *= 2) {
        float v = (t % (2 * st) == 0 && t + st < n) ? s[t + st] : 0.0f;
        __syncthreads();
        s[t] += v;
        __syncthreads();
    }
    out[base + t] = s[0];
}

// emu_test_geometry: out[linear thread id over the grid] encodes
// blockIdx, threadIdx, blockDim and gridDim, to check the emulator's
// built-in variables in 3-D.
extern "C" __global__ void emu_test_geometry(float* out) {
    long long bid = blockIdx.x + (long long)gridDim.x * (blockIdx.y + (long long)gridDim.y * blockIdx.z);
    long long tid = threadIdx.x + (long long)blockDim.x * (threadIdx.y + (long long)blockDim.y * threadIdx.z);
    long long nt = (long long)blockDim.x * blockDim.y * blockDim.z;
    out[bid * nt + tid] = (float)(bid * 1000 + tid);
}

// emu_test_atomic: every thread of every block adds its global index + 1
// to out[0] (float) and 1 to count[0] (int) with atomicAdd.
extern "C" __global__ void emu_test_atomic(float* out, int* count) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(out, (float)(g + 1));
    atomicAdd(count, 1);
    __syncthreads();
    atomicAdd(count, 1);
}

#endif
