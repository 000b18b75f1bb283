package gpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// The kernels of kernels/*.cu, listed once. A family is one kernel compiled
// for several storage dtypes; its names are the base name and a suffix
// (kernels/README.md, "Storage suffixes"). The launchers get a kernel's
// name only through its family (kernelFamily.of), the emulator's table
// gpu/emu/kernel_list.h is generated from KernelNames (go generate
// ./gpu/emu), and kernels_test.go checks the list against the kernel
// sources and kernels/README.md.

// suffixKind says how a family's names end.
type suffixKind int

const (
	sfxNone suffixKind = iota // the base name is the whole name
	sfxX                      // _<x>: _f32 or _bf16, one tensor's storage
	sfxXW                     // _<x>_<w>: two tensors' storage, each _f32 or _bf16
	sfxGemm                   // _<a><b><c>: the three GEMM operands, each f or b
)

// kernelFamily is one family of kernels/*.cu.
type kernelFamily struct {
	base  string     // name without the dtype suffix
	file  string     // kernels/<file>.cu defines it
	kind  suffixKind // its suffixes
	names []string   // every name, in variant order (see of)
}

// kernel is a kernel name as a launcher passes it: only kernelFamily.of
// makes one, so a launcher cannot launch a name that is not listed here.
type kernel struct{ name string }

func family(base, file string, kind suffixKind) *kernelFamily {
	k := &kernelFamily{base: base, file: file, kind: kind}
	switch kind {
	case sfxNone:
		k.names = []string{base}
	case sfxX:
		k.names = []string{base + "_f32", base + "_bf16"}
	case sfxXW:
		for _, x := range []string{"_f32", "_bf16"} {
			for _, w := range []string{"_f32", "_bf16"} {
				k.names = append(k.names, base+x+w)
			}
		}
	case sfxGemm:
		for i := 0; i < 8; i++ {
			l := func(bit int) string { return map[bool]string{false: "f", true: "b"}[i&bit != 0] }
			k.names = append(k.names, base+"_"+l(4)+l(2)+l(1))
		}
	}
	return k
}

// The families, by file.
var (
	// gemm.cu
	kGemmF32   = family("gemm_f32", "gemm", sfxGemm)
	kGemmWMMA  = family("gemm_wmma", "gemm", sfxGemm)
	kGemmF32FF = family("gemm_f32_ff", "gemm", sfxNone) // the first name of gemm_f32_fff; cuda/device_test.go launches it
	// elementwise.cu
	kBiasAdd    = family("bias_add", "elementwise", sfxXW)
	kBiasGrad   = family("bias_grad", "elementwise", sfxX)
	kBiasGrad2  = family("bias_grad2", "elementwise", sfxX)
	kAdd        = family("add", "elementwise", sfxX)
	kScale      = family("scale", "elementwise", sfxX)
	kActFwd     = family("act_fwd", "elementwise", sfxXW)
	kActBwd     = family("act_bwd", "elementwise", sfxXW)
	kTanhFwd    = family("tanh_fwd", "elementwise", sfxX)
	kTanhBwd    = family("tanh_bwd", "elementwise", sfxX)
	kDropoutFwd = family("dropout_fwd", "elementwise", sfxX)
	kDropoutBwd = family("dropout_bwd", "elementwise", sfxX)
	kToBF16     = family("convert_f32_bf16", "elementwise", sfxNone)
	kToF32      = family("convert_bf16_f32", "elementwise", sfxNone)
	// reduce.cu
	kSumSq        = family("sumsq", "reduce", sfxX)
	kSumSqPartial = family("sumsq_partial", "reduce", sfxX)
	kSumF32       = family("sum_f32", "reduce", sfxNone)
	// layernorm.cu
	kLNFwd    = family("layernorm_fwd", "layernorm", sfxXW)
	kLNBwdDx  = family("layernorm_bwd_dx", "layernorm", sfxXW)
	kLNBwdDwb = family("layernorm_bwd_dwdb", "layernorm", sfxX)
	kAddLNFwd = family("add_layernorm_fwd", "layernorm", sfxXW)
	kLNBwd    = family("layernorm_bwd_fused", "layernorm", sfxXW)
	kLNSegFwd = family("layernorm_seg_fwd", "layernorm", sfxXW)
	// attention.cu
	kAttnFwd    = family("attn_fwd", "attention", sfxX)
	kAttnBwdD   = family("attn_bwd_d", "attention", sfxX)
	kAttnBwdDKV = family("attn_bwd_dkv", "attention", sfxX)
	kAttnBwdDQ  = family("attn_bwd_dq", "attention", sfxX)
	// softmax.cu
	kSoftmaxFwd = family("masked_softmax_fwd", "softmax", sfxXW)
	kSoftmaxBwd = family("masked_softmax_bwd", "softmax", sfxXW)
	// embedding.cu
	kEmbFwd = family("embedding_fwd", "embedding", sfxXW)
	kEmbBwd = family("embedding_bwd", "embedding", sfxX)
	// adapter.cu
	kAdapterFwd = family("adapter_fwd", "adapter", sfxXW)
	kAdapterBwd = family("adapter_bwd", "adapter", sfxXW)
	kAdapterSeg = family("adapter_seg_fwd", "adapter", sfxXW)
	// loss.cu
	kSoftmaxXent = family("softmax_xent", "loss", sfxX)
	kMSE         = family("mse", "loss", sfxXW)
	// adamw.cu
	kAdamW = family("adamw_f32", "adamw", sfxNone)
)

// kernelFamilies is every family, in the order of KernelNames.
var kernelFamilies = []*kernelFamily{
	kGemmF32, kGemmWMMA, kGemmF32FF,
	kBiasAdd, kBiasGrad, kBiasGrad2, kAdd, kScale, kActFwd, kActBwd, kTanhFwd, kTanhBwd, kDropoutFwd, kDropoutBwd, kToBF16, kToF32,
	kSumSq, kSumSqPartial, kSumF32,
	kLNFwd, kLNBwdDx, kLNBwdDwb, kAddLNFwd, kLNBwd, kLNSegFwd,
	kAttnFwd, kAttnBwdD, kAttnBwdDKV, kAttnBwdDQ,
	kSoftmaxFwd, kSoftmaxBwd,
	kEmbFwd, kEmbBwd,
	kAdapterFwd, kAdapterBwd, kAdapterSeg,
	kSoftmaxXent, kMSE,
	kAdamW,
}

// KernelNames returns the name of every kernel of kernels/*.cu that the
// backend may launch, family by family.
func KernelNames() []string {
	var out []string
	for _, k := range kernelFamilies {
		out = append(out, k.names...)
	}
	return out
}

// of returns the family's kernel for the storage of ts: none for sfxNone,
// one tensor for sfxX, two (x then w) for sfxXW, the three operands (a, b,
// c) for sfxGemm. Each tensor is F32 or BF16 (the launchers check that
// first); a wrong count is a bug in the launcher and panics.
func (k *kernelFamily) of(ts ...*Tensor) kernel {
	want := map[suffixKind]int{sfxNone: 0, sfxX: 1, sfxXW: 2, sfxGemm: 3}[k.kind]
	if len(ts) != want {
		panic(fmt.Sprintf("gpu: kernel family %s takes %d dtypes, got %d", k.base, want, len(ts)))
	}
	i := 0
	for _, t := range ts {
		i *= 2
		if t.dt == backend.BF16 {
			i++
		}
	}
	return kernel{k.names[i]}
}
