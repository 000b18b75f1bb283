# Sourced by the scripts that build cuda-tagged binaries (cuda-check.sh,
# build-cuda.sh, gpu-bundle.sh): finds the CUDA toolkit and sets the cgo
# flags to link against the driver API stub. Returns 1, with the reason in
# $cuda_env_missing, when the toolkit (nvcc, cuda.h, the stub libcuda.so)
# is not installed.
#
# Linking against the stub (libcuda.so with SONAME libcuda.so.1) makes the
# binaries load the real driver's libcuda.so.1 on the GPU machine. Debian's
# nvidia-cuda-dev puts the stub in the multiarch stubs folder and cuda.h in
# /usr/include; NVIDIA's own toolkit uses /usr/local/cuda.
cuda_env_missing=""
if ! command -v nvcc >/dev/null 2>&1; then
	for d in /usr/lib/nvidia-cuda-toolkit/bin /usr/local/cuda/bin; do
		if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
	done
fi
if ! command -v nvcc >/dev/null 2>&1; then
	cuda_env_missing="nvcc not found (PATH, /usr/lib/nvidia-cuda-toolkit/bin, /usr/local/cuda/bin)"
	return 1
fi
cuda_stub=""
for d in /usr/lib/x86_64-linux-gnu/stubs /usr/local/cuda/lib64/stubs /usr/local/cuda/targets/x86_64-linux/lib/stubs; do
	if [ -e "$d/libcuda.so" ]; then cuda_stub=$d; break; fi
done
if [ -z "$cuda_stub" ]; then
	cuda_env_missing="no stub libcuda.so (looked in the Debian and /usr/local/cuda stub folders)"
	return 1
fi
cuda_inc=/usr/include
[ -e "$cuda_inc/cuda.h" ] || cuda_inc=/usr/local/cuda/include
if [ ! -e "$cuda_inc/cuda.h" ]; then
	cuda_env_missing="cuda.h not found in /usr/include or /usr/local/cuda/include"
	return 1
fi
export CGO_ENABLED=1
export CGO_CFLAGS="${CGO_CFLAGS:-} -I$cuda_inc"
export CGO_LDFLAGS="${CGO_LDFLAGS:-} -L$cuda_stub"
