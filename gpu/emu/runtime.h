// runtime.h: the C interface of the kernel emulator (runtime.cc) for cgo.
#ifndef GPU_EMU_RUNTIME_H
#define GPU_EMU_RUNTIME_H
#ifdef __cplusplus
extern "C" {
#endif

// emu_launch runs kernel name over the grid; args holds nargs 8-byte
// arguments. It returns 0, or -1 with a message in err (errlen bytes).
int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
               long long shared_bytes, const unsigned long long* args, int nargs, char* err, int errlen);

// emu_kernel_count and emu_kernel_name list the registered kernels.
int emu_kernel_count(void);
const char* emu_kernel_name(int i);

#ifdef __cplusplus
}
#endif
#endif
