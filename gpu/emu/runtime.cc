// runtime.cc: compiles kernels/*.cu (through the src_*.h links, so that the
// Go build cache sees every change to them) against kernels/emu/cuda_emu.h,
// and exposes them by name to emu.go.
#include "src_cuda_emu.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#include "runtime.h"

#include "src_common.h"
#include "src_gemm.h"
#include "src_elementwise.h"
#include "src_reduce.h"
#include "src_layernorm.h"
#include "src_attention.h"
#include "src_softmax.h"
#include "src_embedding.h"
#include "src_adapter.h"
#include "src_loss.h"
#include "src_adamw.h"
#include "src_selftest.h"

namespace {

// arg_as converts one 8-byte launch argument to a kernel parameter type:
// pointers from addresses, long long / unsigned long long by value, double
// from its bits (gpu.F).
template <class T>
T arg_as(unsigned long long v) {
    if constexpr (std::is_pointer<T>::value) {
        return reinterpret_cast<T>(static_cast<uintptr_t>(v));
    } else if constexpr (std::is_same<T, double>::value) {
        double d;
        std::memcpy(&d, &v, 8);
        return d;
    } else {
        static_assert(std::is_same<T, long long>::value || std::is_same<T, unsigned long long>::value,
                      "kernel parameters must be pointers, long long, unsigned long long or double");
        return static_cast<T>(v);
    }
}

template <class... P, size_t... I>
void call_impl(void (*f)(P...), const unsigned long long* a, std::index_sequence<I...>) {
    f(arg_as<P>(a[I])...);
}

template <class... P>
void call(void (*f)(P...), const unsigned long long* a) {
    call_impl(f, a, std::index_sequence_for<P...>{});
}

template <class... P>
constexpr int arity(void (*)(P...)) {
    return sizeof...(P);
}

struct Entry {
    const char* name;
    int arity;
    void (*invoke)(const unsigned long long*);
};

#define K(fn) {#fn, arity(&fn), [](const unsigned long long* a) { call(&fn, a); }}

const Entry kTable[] = {
#include "kernel_list.h"
};
const int kCount = sizeof(kTable) / sizeof(kTable[0]);

struct Job {
    const Entry* e;
    const unsigned long long* args;
};

void run_thread(void* p) {
    Job* j = static_cast<Job*>(p);
    j->e->invoke(j->args);
}

}  // namespace

extern "C" int emu_kernel_count(void) { return kCount; }
extern "C" const char* emu_kernel_name(int i) { return i >= 0 && i < kCount ? kTable[i].name : nullptr; }

extern "C" int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                          unsigned bz, long long shared_bytes, const unsigned long long* args, int nargs, char* err,
                          int errlen) {
    const Entry* e = nullptr;
    for (int i = 0; i < kCount; i++)
        if (std::strcmp(kTable[i].name, name) == 0) e = &kTable[i];
    if (!e) {
        std::snprintf(err, errlen, "no kernel named %s", name);
        return -1;
    }
    if (nargs != e->arity) {
        std::snprintf(err, errlen, "%s takes %d arguments, got %d", name, e->arity, nargs);
        return -1;
    }
    Job job{e, args};
    emu::Block blk;
    std::vector<unsigned char> dyn((size_t)shared_bytes + 16);
    blk.dyn = dyn.data();
    blockDim = dim3(bx, by, bz);
    gridDim = dim3(gx, gy, gz);
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) {
                blockIdx.x = x;
                blockIdx.y = y;
                blockIdx.z = z;
                if (!emu::run_block(blk, blockDim, run_thread, &job)) {
                    std::snprintf(err, errlen, "%s: deadlock in block (%u,%u,%u): %d of %d threads wait at a barrier none of the others will reach",
                                  name, x, y, z, blk.live, blk.n);
                    return -1;
                }
            }
    return 0;
}
