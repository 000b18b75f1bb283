// cuda_emu.h: just enough of CUDA to compile kernels/*.cu as C++17 and run
// them on the CPU. Used only by the cgo package gpu/emu; nvcc never sees it.
//
// Execution model: a launch runs its blocks one after another; the threads of
// a block run as fibers on the calling OS thread (a 14-instruction stack
// switch on x86-64, ucontext elsewhere: swapcontext's signal-mask system
// calls made it several times slower). A fiber runs
// until it reaches a barrier (__syncthreads, a warp shuffle, __syncwarp) or
// returns; the scheduler then runs the next one. Passes alternate between
// ascending and descending thread order, so a missing __syncthreads usually
// shows up as a wrong result instead of passing by luck; the first pass's
// direction alternates from block to block.
//
// Fidelity notes:
//   - __shared__ is `static`: one instance shared by every fiber of the block
//     (blocks run sequentially, launches are serialised by the caller);
//   - warp shuffles are real rendezvous of the live lanes of the warp; the
//     mask argument is not checked (kernels here always use full warps);
//   - threads that have returned count as arrived at later barriers (as on
//     sm_70+); a barrier no live thread can pass is reported as a deadlock;
//   - nvcuda::wmma: matrix_a / matrix_b fragments hold the whole 16x16 tile in
//     every lane; an accumulator lane owns only the elements e with
//     e % 32 == lane (CUDA leaves the mapping unspecified, so kernels must
//     not depend on it), which also keeps mma_sync at 16^3 MACs per warp.
#ifndef CUDA_EMU_H
#define CUDA_EMU_H

#ifdef __CUDACC__
#error "cuda_emu.h is for the CPU emulator only; nvcc uses the real CUDA headers"
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <vector>
#include <ucontext.h>

// ---------------------------------------------------------------- keywords

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __constant__ static const
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

// Dynamic shared memory: kernels write DYN_SHARED(float, name) (see
// kernels/common.cuh for the CUDA definition).
#define DYN_SHARED(T, name) T* name = reinterpret_cast<T*>(emu::dyn_smem())

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
static const int warpSize = 32;

// ---------------------------------------------------------------- scheduler

namespace emu {

#if defined(__x86_64__)
// Context switch: push the callee-saved registers, store the stack pointer
// in *from, load to, pop and return into the other context (System V ABI).
extern "C" void emu_switch(void** from, void* to);
asm(R"(
.text
.globl emu_switch
.type emu_switch,@function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size emu_switch,.-emu_switch
)");
struct Context {
    void* sp;
};
#else
struct Context {
    ucontext_t uc;
};
#endif

enum FiberState { RUNNABLE, WAIT_BLOCK, WAIT_WARP, DONE };

struct Fiber {
    Context ctx;
    char* stack;
    FiberState state;
    uint3 tid;
};

struct Block {
    int n = 0;              // threads in the block
    int live = 0;           // threads not yet returned
    int arrived = 0;        // at the block barrier
    std::vector<Fiber> f;
    std::vector<int> warp_live, warp_arrived;
    std::vector<uint64_t> slot;  // shuffle exchange, one per thread
    Context main;
    int cur = 0;
    void (*body)(void*) = nullptr;
    void* arg = nullptr;
    bool deadlock = false;
    unsigned char* dyn = nullptr;
};

inline thread_local Block* cur_block = nullptr;

inline void* dyn_smem() { return cur_block->dyn; }

inline int lin_tid() { return cur_block->cur; }

inline void release_block(Block* b) {
    b->arrived = 0;
    for (auto& x : b->f)
        if (x.state == WAIT_BLOCK) x.state = RUNNABLE;
}

inline void release_warp(Block* b, int w) {
    b->warp_arrived[w] = 0;
    int lo = w * 32, hi = std::min(b->n, lo + 32);
    for (int i = lo; i < hi; i++)
        if (b->f[i].state == WAIT_WARP) b->f[i].state = RUNNABLE;
}

inline void switch_to(Context* from, Context* to) {
#if defined(__x86_64__)
    emu_switch(&from->sp, to->sp);
#else
    swapcontext(&from->uc, &to->uc);
#endif
}

// yield returns control to the scheduler; the fiber resumes when RUNNABLE.
inline void yield() {
    Block* b = cur_block;
    Fiber& me = b->f[b->cur];
    switch_to(&me.ctx, &b->main);
}

inline void syncthreads() {
    Block* b = cur_block;
    Fiber& me = b->f[b->cur];
    b->arrived++;
    if (b->arrived == b->live) {
        release_block(b);
        return;
    }
    me.state = WAIT_BLOCK;
    yield();
}

inline void syncwarp() {
    Block* b = cur_block;
    int w = b->cur / 32;
    Fiber& me = b->f[b->cur];
    b->warp_arrived[w]++;
    if (b->warp_arrived[w] == b->warp_live[w]) {
        release_warp(b, w);
        return;
    }
    me.state = WAIT_WARP;
    yield();
}

inline void fiber_entry() {
    Block* b = cur_block;
    b->body(b->arg);
    b = cur_block;
    Fiber& me = b->f[b->cur];
    me.state = DONE;
    b->live--;
    int w = b->cur / 32;
    b->warp_live[w]--;
    // A returned thread no longer holds back the barriers it would have met.
    if (b->arrived > 0 && b->arrived == b->live) release_block(b);
    if (b->warp_arrived[w] > 0 && b->warp_arrived[w] == b->warp_live[w]) release_warp(b, w);
#if defined(__x86_64__)
    switch_to(&me.ctx, &b->main);  // never resumed
    __builtin_trap();
#endif
    // with ucontext, returning resumes uc_link (the scheduler)
}

// Stack pool shared by launches (callers serialise launches).
inline std::vector<char*>& stack_pool() {
    static std::vector<char*> pool;
    return pool;
}
static const size_t kStackBytes = 128 << 10;

// run_block runs body(arg) on every thread of one block. It returns false on
// a deadlock (no thread can make progress while some have not returned).
inline bool run_block(Block& b, dim3 bd, void (*body)(void*), void* arg) {
    b.n = bd.x * bd.y * bd.z;
    b.live = b.n;
    b.arrived = 0;
    b.f.assign(b.n, Fiber{});
    int nw = (b.n + 31) / 32;
    b.warp_live.assign(nw, 0);
    b.warp_arrived.assign(nw, 0);
    for (int i = 0; i < b.n; i++) b.warp_live[i / 32]++;
    b.slot.assign(b.n, 0);
    b.body = body;
    b.arg = arg;
    auto& pool = stack_pool();
    while ((int)pool.size() < b.n) pool.push_back(new char[kStackBytes]);
    for (int i = 0; i < b.n; i++) {
        Fiber& f = b.f[i];
        f.tid.x = i % bd.x;
        f.tid.y = (i / bd.x) % bd.y;
        f.tid.z = i / (bd.x * bd.y);
        f.state = RUNNABLE;
        f.stack = pool[i];
#if defined(__x86_64__)
        // Initial frame for emu_switch: six zero registers, then the
        // "return address" fiber_entry, entered with rsp ≡ 8 (mod 16) as
        // after a call; above it a null return address it never uses.
        uintptr_t top = ((uintptr_t)(f.stack + kStackBytes)) & ~(uintptr_t)15;
        void** sp = (void**)top;
        *--sp = nullptr;
        *--sp = (void*)fiber_entry;
        for (int r = 0; r < 6; r++) *--sp = nullptr;
        f.ctx.sp = sp;
#else
        getcontext(&f.ctx.uc);
        f.ctx.uc.uc_stack.ss_sp = f.stack;
        f.ctx.uc.uc_stack.ss_size = kStackBytes;
        f.ctx.uc.uc_link = &b.main.uc;
        makecontext(&f.ctx.uc, (void (*)())fiber_entry, 0);
#endif
    }
    cur_block = &b;
    // The first pass alternates between blocks (and so between launches),
    // so both orders of every barrier interval get exercised.
    static unsigned long long blocks_run = 0;
    bool forward = (blocks_run++ % 2) == 0;
    while (b.live > 0) {
        bool progress = false;
        for (int k = 0; k < b.n; k++) {
            int i = forward ? k : b.n - 1 - k;
            if (b.f[i].state != RUNNABLE) continue;
            progress = true;
            b.cur = i;
            threadIdx = b.f[i].tid;
            switch_to(&b.main, &b.f[i].ctx);
        }
        forward = !forward;
        if (!progress) {
            cur_block = nullptr;
            return false;
        }
    }
    cur_block = nullptr;
    return true;
}

template <class T>
inline T shfl_from(T v, int src_lane_in_warp, bool own) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    Block* b = cur_block;
    int me = b->cur;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    b->slot[me] = bits;
    syncwarp();
    int src = (me / 32) * 32 + src_lane_in_warp;
    T r = v;
    if (!own && src < b->n && b->f[src].state != DONE) std::memcpy(&r, &b->slot[src], sizeof(T));
    syncwarp();
    return r;
}

}  // namespace emu

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::syncwarp(); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    int lane = emu::lin_tid() % 32;
    return emu::shfl_from(v, (lane / width) * width + (src % width), false);
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    int lane = emu::lin_tid() % 32;
    int src = lane ^ mask;
    bool own = (src / width) != (lane / width);
    return emu::shfl_from(v, src, own);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = emu::lin_tid() % 32;
    bool own = (lane % width) + (int)delta >= width;
    return emu::shfl_from(v, lane + (int)delta, own);
}
template <class T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = emu::lin_tid() % 32;
    bool own = (lane % width) < (int)delta;
    return emu::shfl_from(v, lane - (own ? 0 : (int)delta), own);
}

// Atomics: fibers never run concurrently, so plain read-modify-write is atomic.
template <class T>
inline T atomicAdd(T* p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}

// ---------------------------------------------------------------- math

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x < 0 ? 0 : (x > 1 ? 1 : x); }
using std::max;
using std::min;
template <class T>
inline T __ldg(const T* p) { return *p; }

// ---------------------------------------------------------------- bf16

struct __nv_bfloat16 {
    unsigned short x;
    __nv_bfloat16() = default;
};

inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.x << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Round to nearest even; NaN stays a (quiet) NaN.
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        h.x = (unsigned short)((u >> 16) | 0x40);
        return h;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    h.x = (unsigned short)(u >> 16);
    return h;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 h;
    h.x = u;
    return h;
}
inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned int u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// ---------------------------------------------------------------- wmma

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int m, int n, int k, class T, class Layout = void>
struct fragment;

// matrix_a: the logical 16x16 tile A[i][kk], x[i*16+kk], held whole.
template <class T, class Layout>
struct fragment<matrix_a, 16, 16, 16, T, Layout> {
    static constexpr int num_elements = 256;
    T x[256];
};
// matrix_b: logical B[kk][j], x[kk*16+j], held whole.
template <class T, class Layout>
struct fragment<matrix_b, 16, 16, 16, T, Layout> {
    static constexpr int num_elements = 256;
    T x[256];
};
// accumulator: logical C[i][j], x[i*16+j]; this lane owns e % 32 == lane.
template <class T>
struct fragment<accumulator, 16, 16, 16, T, void> {
    static constexpr int num_elements = 256;
    T x[256];
};

inline int lane() { return emu::lin_tid() % 32; }

inline float to_f(float v) { return v; }
inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class Use, class T, class L, class V>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, L>& f, V v) {
    for (int e = 0; e < 256; e++) f.x[e] = (T)v;
}

template <class T>
inline void load_matrix_sync(fragment<matrix_a, 16, 16, 16, T, row_major>& f, const T* p, unsigned ldm) {
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < 16; k++) f.x[i * 16 + k] = p[i * ldm + k];
    __syncwarp();
}
template <class T>
inline void load_matrix_sync(fragment<matrix_a, 16, 16, 16, T, col_major>& f, const T* p, unsigned ldm) {
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < 16; k++) f.x[i * 16 + k] = p[k * ldm + i];
    __syncwarp();
}
template <class T>
inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, row_major>& f, const T* p, unsigned ldm) {
    for (int k = 0; k < 16; k++)
        for (int j = 0; j < 16; j++) f.x[k * 16 + j] = p[k * ldm + j];
    __syncwarp();
}
template <class T>
inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, col_major>& f, const T* p, unsigned ldm) {
    for (int k = 0; k < 16; k++)
        for (int j = 0; j < 16; j++) f.x[k * 16 + j] = p[j * ldm + k];
    __syncwarp();
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float, void>& f, const float* p, unsigned ldm, layout_t l) {
    for (int e = lane(); e < 256; e += 32) {
        int i = e / 16, j = e % 16;
        f.x[e] = l == mem_row_major ? p[i * ldm + j] : p[j * ldm + i];
    }
    __syncwarp();
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float, void>& f, unsigned ldm, layout_t l) {
    __syncwarp();
    for (int e = lane(); e < 256; e += 32) {
        int i = e / 16, j = e % 16;
        if (l == mem_row_major)
            p[i * ldm + j] = f.x[e];
        else
            p[j * ldm + i] = f.x[e];
    }
    __syncwarp();
}
template <class TA, class LA, class TB, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float, void>& d, const fragment<matrix_a, 16, 16, 16, TA, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, TB, LB>& b, const fragment<accumulator, 16, 16, 16, float, void>& c) {
    for (int e = lane(); e < 256; e += 32) {
        int i = e / 16, j = e % 16;
        float s = c.x[e];
        for (int k = 0; k < 16; k++) s += to_f(a.x[i * 16 + k]) * to_f(b.x[k * 16 + j]);
        d.x[e] = s;
    }
    __syncwarp();
}

}  // namespace wmma
}  // namespace nvcuda

#endif  // CUDA_EMU_H
