//go:build amd64 && !purego

package cpu

import "golang.org/x/sys/cpu"

// vecImpls lists the vector-kernel implementations this CPU runs,
// narrowest first: plain Go always, AVX2+FMA and AVX-512F where the CPU and
// OS support them (x/sys/cpu checks XGETBV). All give bitwise the same
// results (vecmath.go), so the widest is used.
var vecImpls = availableVecImpls()

func availableVecImpls() []*vecImpl {
	ks := []*vecImpl{vecGo}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, &vecImpl{name: "avx2", id: vecAVX2ID})
	}
	if cpu.X86.HasAVX512F {
		ks = append(ks, &vecImpl{name: "avx512", id: vecAVX512ID})
	}
	return ks
}

// The vecKernel* functions call the assembly kernel of instruction set id
// (vecAVX2ID or vecAVX512ID) on n elements, n a positive multiple of 16.
// Direct calls (not function values) let escape analysis use the
// //go:noescape declarations, so the callers' stack buffers stay on the
// stack.

// vecKernelGelu: o[i] = gelu32(a[i]).
func vecKernelGelu(id vecID, o, a *float32, n int) {
	if id == vecAVX512ID {
		vecGeluAVX512(o, a, &vecTable[0], n)
	} else {
		vecGeluAVX2(o, a, &vecTable[0], n)
	}
}

// vecKernelGeluGradMul: o[i] = g[i]·geluGrad32(a[i]).
func vecKernelGeluGradMul(id vecID, o, g, a *float32, n int) {
	if id == vecAVX512ID {
		vecGeluGradMulAVX512(o, g, a, &vecTable[0], n)
	} else {
		vecGeluGradMulAVX2(o, g, a, &vecTable[0], n)
	}
}

// vecKernelExp: o[i] = exp32(a[i]).
func vecKernelExp(id vecID, o, a *float32, n int) {
	if id == vecAVX512ID {
		vecExpAVX512(o, a, &vecTable[0], n)
	} else {
		vecExpAVX2(o, a, &vecTable[0], n)
	}
}

// vecKernelExpSubSum: x[i] = exp32(x[i]-m); acc[i mod 16] += x[i].
func vecKernelExpSubSum(id vecID, x *float32, n int, m float32, acc *[vecLanes]float32) {
	if id == vecAVX512ID {
		vecExpSubSumAVX512(x, &vecTable[0], n, m, acc)
	} else {
		vecExpSubSumAVX2(x, &vecTable[0], n, m, acc)
	}
}

// vecKernelMax: the largest of m and the elements (NaN never wins).
func vecKernelMax(id vecID, x *float32, n int, m float32) float32 {
	if id == vecAVX512ID {
		return vecMaxAVX512(x, n, m)
	}
	return vecMaxAVX2(x, n, m)
}

// vecKernelDot: acc[i mod 16] = fma32(a[i], b[i], acc[i mod 16]).
func vecKernelDot(id vecID, a, b *float32, n int, acc *[vecLanes]float32) {
	if id == vecAVX512ID {
		vecDotAVX512(a, b, n, acc)
	} else {
		vecDotAVX2(a, b, n, acc)
	}
}

// vecKernelSoftmaxGrad: o[i] = (p[i]·(g[i]-d))·s.
func vecKernelSoftmaxGrad(id vecID, o, g, p *float32, n int, d, s float32) {
	if id == vecAVX512ID {
		vecSoftmaxGradAVX512(o, g, p, n, d, s)
	} else {
		vecSoftmaxGradAVX2(o, g, p, n, d, s)
	}
}

// vecKernelScale: x[i] *= s.
func vecKernelScale(id vecID, x *float32, n int, s float32) {
	if id == vecAVX512ID {
		vecScaleAVX512(x, n, s)
	} else {
		vecScaleAVX2(x, n, s)
	}
}

// vecKernelAdd: o[i] = a[i] + b[i].
func vecKernelAdd(id vecID, o, a, b *float32, n int) {
	if id == vecAVX512ID {
		vecAddAVX512(o, a, b, n)
	} else {
		vecAddAVX2(o, a, b, n)
	}
}

// vecKernelRelu: o[i] = a[i] > 0 ? a[i] : 0.
func vecKernelRelu(id vecID, o, a *float32, n int) {
	if id == vecAVX512ID {
		vecReluAVX512(o, a, &vecTable[0], n)
	} else {
		vecReluAVX2(o, a, &vecTable[0], n)
	}
}

// vecKernelReluGradMul: o[i] = a[i] > 0 ? g[i] : 0.
func vecKernelReluGradMul(id vecID, o, g, a *float32, n int) {
	if id == vecAVX512ID {
		vecReluGradMulAVX512(o, g, a, n)
	} else {
		vecReluGradMulAVX2(o, g, a, n)
	}
}

// vecKernelSum64: acc[i mod 16] += float64(x[i]).
func vecKernelSum64(id vecID, x *float32, n int, acc *[vecLanes]float64) {
	if id == vecAVX512ID {
		vecSum64AVX512(x, n, acc)
	} else {
		vecSum64AVX2(x, n, acc)
	}
}

// vecKernelSumSqDev64: acc[i mod 16] += (float64(x[i]) - m)².
func vecKernelSumSqDev64(id vecID, x *float32, n int, m float64, acc *[vecLanes]float64) {
	if id == vecAVX512ID {
		vecSumSqDev64AVX512(x, n, m, acc)
	} else {
		vecSumSqDev64AVX2(x, n, m, acc)
	}
}

// vecKernelLNApply: o[i] = ((x[i]-m)·r)·w[i] + b[i].
func vecKernelLNApply(id vecID, o, x, w, b *float32, n int, m, r float32) {
	if id == vecAVX512ID {
		vecLNApplyAVX512(o, x, w, b, n, m, r)
	} else {
		vecLNApplyAVX2(o, x, w, b, n, m, r)
	}
}

// vecKernelLNGradSums: sg[i mod 16] += g·w, sgx[i mod 16] += (g·w)·((x-m)·r),
// in float64.
func vecKernelLNGradSums(id vecID, g, w, x *float32, n int, m, r float64, sg, sgx *[vecLanes]float64) {
	if id == vecAVX512ID {
		vecLNGradSumsAVX512(g, w, x, n, m, r, sg, sgx)
	} else {
		vecLNGradSumsAVX2(g, w, x, n, m, r, sg, sgx)
	}
}

// vecKernelLNGradRow: o[i] = r·((g·w - sg) - ((x-m)·r)·sgx).
func vecKernelLNGradRow(id vecID, o, g, x, w *float32, n int, m, r, sg, sgx float32) {
	if id == vecAVX512ID {
		vecLNGradRowAVX512(o, g, x, w, n, m, r, sg, sgx)
	} else {
		vecLNGradRowAVX2(o, g, x, w, n, m, r, sg, sgx)
	}
}

// vecKernelLNParamRow: sw[i] += g·((x-m)·r), sb[i] += g.
func vecKernelLNParamRow(id vecID, sw, sb, g, x *float32, n int, m, r float32) {
	if id == vecAVX512ID {
		vecLNParamRowAVX512(sw, sb, g, x, n, m, r)
	} else {
		vecLNParamRowAVX2(sw, sb, g, x, n, m, r)
	}
}

// The assembly kernels (vecmath_amd64.s). tbl is &vecTable[0].

//go:noescape
func vecGeluAVX2(o, a, tbl *float32, n int)

//go:noescape
func vecGeluGradMulAVX2(o, gr, a, tbl *float32, n int)

//go:noescape
func vecExpAVX2(o, a, tbl *float32, n int)

//go:noescape
func vecExpSubSumAVX2(x, tbl *float32, n int, m float32, acc *[16]float32)

//go:noescape
func vecMaxAVX2(x *float32, n int, m float32) float32

//go:noescape
func vecDotAVX2(a, b *float32, n int, acc *[16]float32)

//go:noescape
func vecSoftmaxGradAVX2(o, gr, p *float32, n int, d, s float32)

//go:noescape
func vecScaleAVX2(x *float32, n int, s float32)

//go:noescape
func vecGeluAVX512(o, a, tbl *float32, n int)

//go:noescape
func vecGeluGradMulAVX512(o, gr, a, tbl *float32, n int)

//go:noescape
func vecExpAVX512(o, a, tbl *float32, n int)

//go:noescape
func vecExpSubSumAVX512(x, tbl *float32, n int, m float32, acc *[16]float32)

//go:noescape
func vecMaxAVX512(x *float32, n int, m float32) float32

//go:noescape
func vecDotAVX512(a, b *float32, n int, acc *[16]float32)

//go:noescape
func vecSoftmaxGradAVX512(o, gr, p *float32, n int, d, s float32)

//go:noescape
func vecScaleAVX512(x *float32, n int, s float32)

//go:noescape
func vecAddAVX2(o, a, b *float32, n int)

//go:noescape
func vecReluAVX2(o, a, tbl *float32, n int)

//go:noescape
func vecReluGradMulAVX2(o, gr, a *float32, n int)

//go:noescape
func vecSum64AVX2(x *float32, n int, acc *[16]float64)

//go:noescape
func vecSumSqDev64AVX2(x *float32, n int, m float64, acc *[16]float64)

//go:noescape
func vecLNApplyAVX2(o, x, w, b *float32, n int, m, r float32)

//go:noescape
func vecLNGradSumsAVX2(gr, w, x *float32, n int, m, r float64, sg, sgx *[16]float64)

//go:noescape
func vecLNGradRowAVX2(o, gr, x, w *float32, n int, m, r, sg, sgx float32)

//go:noescape
func vecLNParamRowAVX2(sw, sb, gr, x *float32, n int, m, r float32)

//go:noescape
func vecAddAVX512(o, a, b *float32, n int)

//go:noescape
func vecReluAVX512(o, a, tbl *float32, n int)

//go:noescape
func vecReluGradMulAVX512(o, gr, a *float32, n int)

//go:noescape
func vecSum64AVX512(x *float32, n int, acc *[16]float64)

//go:noescape
func vecSumSqDev64AVX512(x *float32, n int, m float64, acc *[16]float64)

//go:noescape
func vecLNApplyAVX512(o, x, w, b *float32, n int, m, r float32)

//go:noescape
func vecLNGradSumsAVX512(gr, w, x *float32, n int, m, r float64, sg, sgx *[16]float64)

//go:noescape
func vecLNGradRowAVX512(o, gr, x, w *float32, n int, m, r, sg, sgx float32)

//go:noescape
func vecLNParamRowAVX512(sw, sb, gr, x *float32, n int, m, r float32)
