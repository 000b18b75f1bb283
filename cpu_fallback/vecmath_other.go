//go:build !amd64 || purego

package cpu

// vecImpls: only the plain Go kernels off amd64 (or with the purego tag).
var vecImpls = []*vecImpl{vecGo}

// Without assembly the vecKernel* functions are never called (the only
// implementation is vecGoID, which the slice functions run as Go loops).

func vecKernelGelu(vecID, *float32, *float32, int)                         { panic(noVecAsm) }
func vecKernelGeluGradMul(vecID, *float32, *float32, *float32, int)        { panic(noVecAsm) }
func vecKernelExp(vecID, *float32, *float32, int)                          { panic(noVecAsm) }
func vecKernelExpSubSum(vecID, *float32, int, float32, *[vecLanes]float32) { panic(noVecAsm) }
func vecKernelMax(vecID, *float32, int, float32) float32                   { panic(noVecAsm) }
func vecKernelDot(vecID, *float32, *float32, int, *[vecLanes]float32)      { panic(noVecAsm) }
func vecKernelSoftmaxGrad(vecID, *float32, *float32, *float32, int, float32, float32) {
	panic(noVecAsm)
}
func vecKernelScale(vecID, *float32, int, float32)                  { panic(noVecAsm) }
func vecKernelAdd(vecID, *float32, *float32, *float32, int)         { panic(noVecAsm) }
func vecKernelRelu(vecID, *float32, *float32, int)                  { panic(noVecAsm) }
func vecKernelReluGradMul(vecID, *float32, *float32, *float32, int) { panic(noVecAsm) }
func vecKernelSum64(vecID, *float32, int, *[vecLanes]float64)       { panic(noVecAsm) }
func vecKernelSumSqDev64(vecID, *float32, int, float64, *[vecLanes]float64) {
	panic(noVecAsm)
}
func vecKernelLNApply(vecID, *float32, *float32, *float32, *float32, int, float32, float32) {
	panic(noVecAsm)
}
func vecKernelLNGradSums(vecID, *float32, *float32, *float32, int, float64, float64, *[vecLanes]float64, *[vecLanes]float64) {
	panic(noVecAsm)
}
func vecKernelLNGradRow(vecID, *float32, *float32, *float32, *float32, int, float32, float32, float32, float32) {
	panic(noVecAsm)
}
func vecKernelLNParamRow(vecID, *float32, *float32, *float32, *float32, int, float32, float32) {
	panic(noVecAsm)
}

const noVecAsm = "cpu: no vector assembly in this build"
