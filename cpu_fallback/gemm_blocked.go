package cpu

// The packed, cache-blocked SGEMM driver (Goto / BLIS loop structure).
//
// Dimension letters in this file: m, n, k are the GEMM sizes (op(A) is m×k,
// op(B) is k×n); mr×nr is the register tile of a micro-kernel; mc, kc, nc
// are the cache blocks:
//
//	for jc in n step nc:              B block kc×nc packed once, stays in L3
//	  for pc in k step kc:
//	    pack B[pc:pc+kc, jc:jc+nc] into nr-wide panels
//	    for ic in m step mc:          A block mc×kc packed, stays in L2
//	      pack A[ic:ic+mc, pc:pc+kc] into mr-tall panels
//	      for jr in nc step nr:       one B panel kc×nr stays in L1
//	        for ir in mc step mr:
//	          micro-kernel: C[ir:ir+mr, jr:jr+nr] = alpha·Ap·Bp + beta'·C
//
// beta' is the caller's beta for the first k block and 1 afterwards, so C is
// read (and beta applied) exactly once per element, and not at all when
// beta == 0.
//
// Determinism: each C element is the sum over k blocks in increasing order,
// and inside a block the micro-kernel sums p in increasing order. The block
// boundaries depend only on k and the kernel's kc, and threads split only m
// or n (never k) along whole register tiles, so the arithmetic done for an
// element does not depend on the number of workers or on scheduling.
//
// Packed layouts: an A panel holds mr rows of kc columns stored p-major,
// Ap[p*mr+r] = op(A)[ic+ir+r, pc+p]; a B panel holds nr columns,
// Bp[p*nr+j] = op(B)[pc+p, jc+jr+j]. Rows/columns past the matrix edge are
// zero-filled, so the kernel always runs full tiles; edge tiles are written
// to a scratch tile and copied out.

import (
	"runtime"
	"sync"
)

// gemmKernel is one micro-kernel with the cache blocking tuned for it.
type gemmKernel struct {
	// name identifies the kernel in tests and benchmarks ("avx2", "go").
	name string
	// mr×nr is the register tile the kernel computes.
	mr, nr int
	// mc, kc, nc are the cache block sizes (mc a multiple of mr, nc of nr).
	mc, kc, nc int
	// fn computes c[i*ldc+j] = alpha·Σ_p a[p*mr+i]·b[p*nr+j] + beta·c[i*ldc+j]
	// for i < mr, j < nr, p < kc, summing p in increasing order; when
	// beta == 0 it does not read c. a holds kc*mr and b kc*nr packed values;
	// kc >= 1.
	fn func(kc int, a, b, c []float32, ldc int, alpha, beta float32)
	// fnDirectA, when not nil, is fn reading A unpacked from row-major
	// storage: element (i, p) at a[i*lda+p]. Used where packing A would not
	// pay for itself: B blocks of at most directMax panels (directAPanels
	// when 0), so few reuses of each packed A panel.
	fnDirectA func(kc int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32)
	directMax int
}

// directAPanels is the default of gemmKernel.directMax: with at most 8
// nr-wide B panels (n <= 128 for nr=16, e.g. the adapter's m=64 side) each
// packed A panel would be used that few times, and packing A cost about a
// third of the time (profile of 4096x64x768_NT on Zen 3).
const directAPanels = 8

// maxTile bounds mr*nr over all kernels (AVX-512: 12×32), for the scratch tile.
const maxTile = 12 * 32

// gemmGoKernel is the portable kernel, always compiled and tested. 4×4 keeps
// its 16 accumulators in registers on arm64 (32 FP registers) and nearly so
// on amd64 (16).
var gemmGoKernel = &gemmKernel{
	name: "go", mr: 4, nr: 4,
	// kc: A and B panels 4*256*4 B = 4 KiB each, far inside L1 (32 KiB);
	// mc×kc = 128 KiB and kc×nc = 4 MiB as for the AVX2 kernel.
	mc: 128, kc: 256, nc: 4096,
	fn: sgemmKernelGo4x4,
}

// gemmMinFlopsPerWorker is the work (2·m·n·k) below which another worker is
// not worth its start-up cost: about 2^20 flops, roughly 10 µs of one core
// at AVX2 speed, against a few µs to wake a goroutine.
const gemmMinFlopsPerWorker = 1 << 20

// gemmWorkers picks how many workers sgemm uses for a kernel with an mr×nr
// register tile: GOMAXPROCS, fewer for small problems, and no more than
// there are register tiles to split.
func gemmWorkers(mr, nr, m, n, k int) int {
	w := runtime.GOMAXPROCS(0)
	flops := 2 * float64(m) * float64(n) * float64(k)
	if byWork := int(flops / gemmMinFlopsPerWorker); byWork < w {
		w = byWork
	}
	tiles := max(ceilDiv(m, mr), ceilDiv(n, nr))
	w = min(w, tiles)
	return max(w, 1)
}

// sgemmBlocked computes C = alpha·op(A)·op(B) + beta·C (see sgemm) with the
// given kernel on up to workers goroutines. Arguments must already be
// checked (checkGemmArgs).
func sgemmBlocked(kern *gemmKernel, workers int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	runGemm(kern, nil, kern.mr, kern.nr, workers, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// runGemm runs one checked product with the float32 kernel kern or, when
// kern is nil, the float64-accumulating kern64 (whose register tile is
// mr×nr), split along whole tiles of m or n over up to workers goroutines:
// part 0 on the calling goroutine, the rest on the pool.
func runGemm(kern *gemmKernel, kern64 *gemmKernelF64, mr, nr, workers int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	tilesM, tilesN := ceilDiv(m, mr), ceilDiv(n, nr)
	splitM := tilesM >= tilesN
	tiles := tilesN
	if splitM {
		tiles = tilesM
	}
	workers = max(1, min(workers, tiles))

	job := getGemmJob()
	job.kern, job.kern64, job.mr, job.nr = kern, kern64, mr, nr
	job.workers, job.splitM, job.tiles = workers, splitM, tiles
	job.transA, job.transB = transA, transB
	job.m, job.n, job.k = m, n, k
	job.alpha, job.beta = alpha, beta
	job.a, job.lda, job.b, job.ldb, job.c, job.ldc = a, lda, b, ldb, c, ldc
	if workers > 1 {
		startGemmPool()
		job.wg.Add(workers - 1)
		for w := 1; w < workers; w++ {
			gemmQueue <- gemmPart{job: job, idx: w}
		}
	}
	job.run(0)
	if workers > 1 {
		job.wg.Wait()
	}
	putGemmJob(job)
}

// gemmJob holds the arguments of one sgemm call split over workers.
type gemmJob struct {
	kern           *gemmKernel    // the float32 kernel, or nil when
	kern64         *gemmKernelF64 // the float64-accumulating one runs
	mr, nr         int            // its register tile
	workers, tiles int
	splitM         bool
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	wg             sync.WaitGroup
}

// gemmPart is one worker's share of a job, sent by value so queueing does
// not allocate.
type gemmPart struct {
	job *gemmJob
	idx int
}

// run computes part idx of the job: a contiguous range of whole register
// tiles along m or n, with its own packing workspace.
func (j *gemmJob) run(idx int) {
	lo := idx * j.tiles / j.workers
	hi := (idx + 1) * j.tiles / j.workers
	if lo == hi {
		return
	}
	ws := getGemmWorkspace()
	a, b, c := j.a, j.b, j.c
	m, n := j.m, j.n
	if j.splitM {
		r0, r1 := lo*j.mr, min(hi*j.mr, j.m)
		m = r1 - r0
		if j.transA {
			a = a[r0:]
		} else {
			a = a[r0*j.lda:]
		}
		c = c[r0*j.ldc:]
	} else {
		c0, c1 := lo*j.nr, min(hi*j.nr, j.n)
		n = c1 - c0
		if j.transB {
			b = b[c0*j.ldb:]
		} else {
			b = b[c0:]
		}
		c = c[c0:]
	}
	if j.kern64 != nil {
		gemmSerialF64(j.kern64, ws, j.transA, j.transB, m, n, j.k, j.alpha, a, j.lda, b, j.ldb, j.beta, c, j.ldc)
	} else {
		gemmSerial(j.kern, ws, j.transA, j.transB, m, n, j.k, j.alpha, a, j.lda, b, j.ldb, j.beta, c, j.ldc)
	}
	putGemmWorkspace(ws)
}

// gemmSerial is the single-threaded blocked loop nest described at the top
// of this file.
func gemmSerial(kern *gemmKernel, ws *gemmWorkspace, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	// Balance the k blocks (k=384 with kc=256 gives 192+192, not 256+128);
	// this depends on k only, so determinism is kept.
	kcB := ceilDiv(k, ceilDiv(k, kern.kc))
	ncMax := min(kern.nc, ceilDiv(n, nr)*nr)
	mcMax := min(kern.mc, ceilDiv(m, mr)*mr)
	ap := ws.buf(&ws.a, mcMax*kcB)
	bp := ws.buf(&ws.b, ncMax*kcB)
	tile := ws.tile[:mr*nr]
	dmax := kern.directMax
	if dmax == 0 {
		dmax = directAPanels
	}
	directA := kern.fnDirectA != nil && !transA && ceilDiv(ncMax, nr) <= dmax
	for jc := 0; jc < n; jc += kern.nc {
		nc := min(kern.nc, n-jc)
		for pc := 0; pc < k; pc += kcB {
			kc := min(kcB, k-pc)
			packB(bp, transB, b, ldb, pc, jc, kc, nc, nr)
			betaBlk := beta
			if pc > 0 {
				betaBlk = 1
			}
			for ic := 0; ic < m; ic += kern.mc {
				mc := min(kern.mc, m-ic)
				var aDirect []float32
				if directA {
					// Only a partial last panel (rows past m) is packed.
					aDirect = a[ic*lda+pc:]
					if full := mc / mr * mr; full < mc {
						packA(ap[full*kc:], transA, a, lda, ic+full, pc, mc-full, kc, mr)
					}
				} else {
					packA(ap, transA, a, lda, ic, pc, mc, kc, mr)
				}
				macroKernel(kern, tile, mc, nc, kc, alpha, ap, aDirect, lda, bp, betaBlk, c[ic*ldc+jc:], ldc)
			}
		}
	}
}

// macroKernel runs the micro-kernel over one packed mc×kc A block and one
// packed kc×nc B block, updating the mc×nc block of C at c. When aDirect is
// not nil, full mr-row tiles read A from aDirect (row-major, leading
// dimension lda) with kern.fnDirectA, and only a partial last panel comes
// from ap.
func macroKernel(kern *gemmKernel, tile []float32, mc, nc, kc int, alpha float32, ap, aDirect []float32, lda int, bp []float32, beta float32, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	for jr := 0; jr < nc; jr += nr {
		nrEff := min(nr, nc-jr)
		bPanel := bp[jr*kc : (jr+nr)*kc]
		for ir := 0; ir < mc; ir += mr {
			mrEff := min(mr, mc-ir)
			direct := aDirect != nil && mrEff == mr
			var aPanel []float32
			if !direct {
				aPanel = ap[ir*kc : (ir+mr)*kc]
			}
			if mrEff == mr && nrEff == nr {
				if direct {
					kern.fnDirectA(kc, aDirect[ir*lda:], lda, bPanel, c[ir*ldc+jr:], ldc, alpha, beta)
				} else {
					kern.fn(kc, aPanel, bPanel, c[ir*ldc+jr:], ldc, alpha, beta)
				}
				continue
			}
			// Edge tile: full tile into scratch (padding is zero), then
			// copy the valid part out with the kernels' alpha/beta
			// arithmetic: alpha·acc rounded, then one fused multiply-add
			// with beta·C (fma32), so an element gets the same bits in an
			// edge tile as in a full one, whichever kernel's tiling puts
			// it there (TestGemmKernelsBitwiseEqual).
			if direct {
				kern.fnDirectA(kc, aDirect[ir*lda:], lda, bPanel, tile, nr, 1, 0)
			} else {
				kern.fn(kc, aPanel, bPanel, tile, nr, 1, 0)
			}
			for i := 0; i < mrEff; i++ {
				row := c[(ir+i)*ldc+jr : (ir+i)*ldc+jr+nrEff]
				t := tile[i*nr : i*nr+nrEff]
				if beta == 0 {
					for j := range row {
						row[j] = alpha * t[j]
					}
				} else {
					for j := range row {
						row[j] = fma32(beta, row[j], alpha*t[j])
					}
				}
			}
		}
	}
}

// packA copies op(A)[ic:ic+mc, pc:pc+kc] into mr-tall panels (layout at the
// top of the file), zero-padding the last panel to mr rows.
func packA(dst []float32, transA bool, a []float32, lda, ic, pc, mc, kc, mr int) {
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		panel := dst[ir*kc : ir*kc+kc*mr]
		if transA {
			// A is stored k×m: op(A)[i, p] = a[p*lda+i]; rows of a panel are
			// contiguous in memory.
			base := pc*lda + ic + ir
			if rows == 6 && mr == 6 {
				for p := 0; p < kc; p++ {
					// Element-wise: Go compiles a [6]float32 copy between
					// slices to a runtime.memmove call, 40% of the time of
					// 768x64x4096_TN.
					s := a[base+p*lda : base+p*lda+6 : base+p*lda+6]
					d := panel[6*p : 6*p+6 : 6*p+6]
					d[0], d[1], d[2], d[3], d[4], d[5] = s[0], s[1], s[2], s[3], s[4], s[5]
				}
				continue
			}
			if rows == 12 && mr == 12 {
				copyRows12(panel, a[base:], lda, kc)
				continue
			}
			for p := 0; p < kc; p++ {
				src := a[base+p*lda : base+p*lda+rows]
				d := panel[p*mr : p*mr+mr]
				for r := range d {
					if r < len(src) {
						d[r] = src[r]
					} else {
						d[r] = 0
					}
				}
			}
			continue
		}
		// A is stored m×k: gather column p of the mr rows.
		base := (ic+ir)*lda + pc
		if rows == 6 && mr == 6 {
			packA6(panel, a, base, lda, kc)
			continue
		}
		if rows == 12 && mr == 12 {
			packA12(panel, a, base, lda, kc)
			continue
		}
		for r := 0; r < rows; r++ {
			src := a[(ic+ir+r)*lda+pc : (ic+ir+r)*lda+pc+kc]
			for p, v := range src {
				panel[p*mr+r] = v
			}
		}
		for r := rows; r < mr; r++ {
			for p := 0; p < kc; p++ {
				panel[p*mr+r] = 0
			}
		}
	}
}

// packA6 interleaves six full rows of A (a[base+r*lda:][:kc], r < 6) into
// one p-major panel: the AVX2 kernel's common case, unrolled because a plain
// per-row scatter made packing a quarter of the time on skinny (n=64) shapes.
func packA6(panel, a []float32, base, lda, kc int) {
	r0 := a[base : base+kc]
	r1 := a[base+lda : base+lda+kc]
	r2 := a[base+2*lda : base+2*lda+kc]
	r3 := a[base+3*lda : base+3*lda+kc]
	r4 := a[base+4*lda : base+4*lda+kc]
	r5 := a[base+5*lda : base+5*lda+kc]
	panel = panel[:6*kc]
	for p := range r0 {
		d := panel[6*p : 6*p+6 : 6*p+6]
		d[0], d[1], d[2], d[3], d[4], d[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
	}
}

// packA12 is packA6 for the AVX-512 kernel's 12-row panels: two groups of
// six rows, so the row slices stay in registers.
func packA12(panel, a []float32, base, lda, kc int) {
	panel = panel[:12*kc]
	for h := 0; h < 12; h += 6 {
		o := base + h*lda
		r0 := a[o : o+kc]
		r1 := a[o+lda : o+lda+kc]
		r2 := a[o+2*lda : o+2*lda+kc]
		r3 := a[o+3*lda : o+3*lda+kc]
		r4 := a[o+4*lda : o+4*lda+kc]
		r5 := a[o+5*lda : o+5*lda+kc]
		for p := range r0 {
			d := panel[12*p+h : 12*p+h+6 : 12*p+h+6]
			d[0], d[1], d[2], d[3], d[4], d[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
		}
	}
}

// packB copies op(B)[pc:pc+kc, jc:jc+nc] into nr-wide panels (layout at the
// top of the file), zero-padding the last panel to nr columns.
func packB(dst []float32, transB bool, b []float32, ldb, pc, jc, kc, nc, nr int) {
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		panel := dst[jr*kc : jr*kc+kc*nr]
		if !transB {
			// B is stored k×n: op(B)[p, j] = b[p*ldb+j]; a panel row is a
			// contiguous run of B.
			base := pc*ldb + jc + jr
			if cols == 16 && nr == 16 {
				copyRows16(panel, b[base:], ldb, kc)
				continue
			}
			if cols == 32 && nr == 32 {
				copyRows32(panel, b[base:], ldb, kc)
				continue
			}
			for p := 0; p < kc; p++ {
				d := panel[p*nr : p*nr+nr]
				copy(d, b[base+p*ldb:base+p*ldb+cols])
				clear(d[cols:])
			}
			continue
		}
		// B is stored n×k: op(B)[p, j] = b[j*ldb+p]; scatter each stored row.
		if cols == 16 && nr == 16 {
			packBT16(panel, b, (jc+jr)*ldb+pc, ldb, kc)
			continue
		}
		if cols == 32 && nr == 32 {
			packBT32(panel, b, (jc+jr)*ldb+pc, ldb, kc)
			continue
		}
		for j := 0; j < cols; j++ {
			src := b[(jc+jr+j)*ldb+pc : (jc+jr+j)*ldb+pc+kc]
			for p, v := range src {
				panel[p*nr+j] = v
			}
		}
		for j := cols; j < nr; j++ {
			for p := 0; p < kc; p++ {
				panel[p*nr+j] = 0
			}
		}
	}
}

// copyRows16Go copies 16 floats from each of kc rows of src (leading
// dimension ld) into dst, back to back: the portable copyRows16.
func copyRows16Go(dst, src []float32, ld, kc int) {
	_ = src[(kc-1)*ld+15]
	dst = dst[:16*kc]
	for p := 0; p < kc; p++ {
		s := src[p*ld : p*ld+16 : p*ld+16]
		d := dst[16*p : 16*p+16 : 16*p+16]
		d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
		d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15] = s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15]
	}
}

// packBT16 interleaves 16 full stored rows of B (b[base+j*ldb:][:kc],
// j < 16) into one p-major panel, in two groups of 8 rows (packBTRows8):
// the AVX2 kernel's case for X·Wᵀ.
func packBT16(panel, b []float32, base, ldb, kc int) {
	panel = panel[:16*kc]
	packBTRows8(panel, 16, b, base, ldb, kc)
	packBTRows8(panel[8:], 16, b, base+8*ldb, ldb, kc)
}

// packBT32 is packBT16 for the AVX-512 kernel's 32-wide panels: four
// groups of 8 stored rows.
func packBT32(panel, b []float32, base, ldb, kc int) {
	panel = panel[:32*kc]
	for h := 0; h < 32; h += 8 {
		packBTRows8(panel[h:], 32, b, base+h*ldb, ldb, kc)
	}
}

// packBTRows8Go sets panel[p*nr+r] = b[base+r*ldb+p] for r < 8, p < kc: 8
// stored rows of B into 8 columns of a panel of width nr, the portable
// packBTRows8 (and its tail).
func packBTRows8Go(panel []float32, nr int, b []float32, base, ldb, kc int) {
	if kc == 0 {
		return
	}
	r0 := b[base : base+kc]
	r1 := b[base+ldb : base+ldb+kc]
	r2 := b[base+2*ldb : base+2*ldb+kc]
	r3 := b[base+3*ldb : base+3*ldb+kc]
	r4 := b[base+4*ldb : base+4*ldb+kc]
	r5 := b[base+5*ldb : base+5*ldb+kc]
	r6 := b[base+6*ldb : base+6*ldb+kc]
	r7 := b[base+7*ldb : base+7*ldb+kc]
	_ = panel[(kc-1)*nr+7]
	for p := range r0 {
		d := panel[nr*p : nr*p+8 : nr*p+8]
		d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p], r6[p], r7[p]
	}
}

// copyRows12Go copies 12 floats from each of kc rows of src (leading
// dimension ld) into dst, back to back: the portable copyRows12.
func copyRows12Go(dst, src []float32, ld, kc int) {
	_ = src[(kc-1)*ld+11]
	dst = dst[:12*kc]
	for p := 0; p < kc; p++ {
		s := src[p*ld : p*ld+12 : p*ld+12]
		d := dst[12*p : 12*p+12 : 12*p+12]
		d[0], d[1], d[2], d[3], d[4], d[5] = s[0], s[1], s[2], s[3], s[4], s[5]
		d[6], d[7], d[8], d[9], d[10], d[11] = s[6], s[7], s[8], s[9], s[10], s[11]
	}
}

// copyRows32Go copies 32 floats from each of kc rows of src (leading
// dimension ld) into dst, back to back: the portable copyRows32.
func copyRows32Go(dst, src []float32, ld, kc int) {
	_ = src[(kc-1)*ld+31]
	dst = dst[:32*kc]
	for p := 0; p < kc; p++ {
		copyRows16Go(dst[32*p:32*p+16], src[p*ld:], ld, 1)
		copyRows16Go(dst[32*p+16:32*p+32], src[p*ld+16:], ld, 1)
	}
}

// scaleC sets C = beta·C, writing zeros without reading C when beta == 0.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		if beta == 1 {
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// sgemmKernelGo4x4 is the portable 4×4 micro-kernel (contract: gemmKernel.fn).
func sgemmKernelGo4x4(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	a = a[:kc*4]
	b = b[:kc*4]
	for p := 0; p < kc; p++ {
		ap := a[4*p : 4*p+4 : 4*p+4]
		bp := b[4*p : 4*p+4 : 4*p+4]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	acc := [16]float32{c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33}
	for i := 0; i < 4; i++ {
		row := c[i*ldc : i*ldc+4]
		t := acc[i*4 : i*4+4]
		if beta == 0 {
			for j := range row {
				row[j] = alpha * t[j]
			}
		} else {
			for j := range row {
				row[j] = alpha*t[j] + beta*row[j]
			}
		}
	}
}

// gemmWorkspace is one worker's packing buffers, reused across calls.
type gemmWorkspace struct {
	a, b []float32
	a64  []float64 // A panels of the float64-accumulating path
	tile [maxTile]float32
}

// buf returns (*p)[:n], growing *p when it is too short; buffers only grow,
// so after the largest shape has run once no call allocates.
func (ws *gemmWorkspace) buf(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	return (*p)[:n]
}

// Free lists rather than sync.Pool: a GC empties a sync.Pool, and refilling
// it would reallocate megabytes of packing buffers in the middle of training.
// The lists hold at most as many entries as sgemm calls ever ran at once.
var (
	gemmFreeMu         sync.Mutex
	gemmFreeWorkspaces []*gemmWorkspace
	gemmFreeJobs       []*gemmJob
)

func getGemmWorkspace() *gemmWorkspace {
	gemmFreeMu.Lock()
	defer gemmFreeMu.Unlock()
	if n := len(gemmFreeWorkspaces); n > 0 {
		ws := gemmFreeWorkspaces[n-1]
		gemmFreeWorkspaces = gemmFreeWorkspaces[:n-1]
		return ws
	}
	return new(gemmWorkspace)
}

func putGemmWorkspace(ws *gemmWorkspace) {
	gemmFreeMu.Lock()
	gemmFreeWorkspaces = append(gemmFreeWorkspaces, ws)
	gemmFreeMu.Unlock()
}

func getGemmJob() *gemmJob {
	gemmFreeMu.Lock()
	defer gemmFreeMu.Unlock()
	if n := len(gemmFreeJobs); n > 0 {
		j := gemmFreeJobs[n-1]
		gemmFreeJobs = gemmFreeJobs[:n-1]
		return j
	}
	return new(gemmJob)
}

func putGemmJob(j *gemmJob) {
	// Drop the references to the caller's slices so the free list does not
	// keep them alive.
	j.a, j.b, j.c = nil, nil, nil
	gemmFreeMu.Lock()
	gemmFreeJobs = append(gemmFreeJobs, j)
	gemmFreeMu.Unlock()
}

// gemmQueue feeds the long-lived gemm workers. Long-lived workers (rather
// than a goroutine per call) keep sgemm allocation-free.
var (
	gemmQueue     chan gemmPart
	gemmQueueOnce sync.Once
)

// startGemmPool starts GOMAXPROCS-1 workers (at least one) the first time a
// call is split. Workers only ever run gemm parts, so a caller blocked on
// the queue always makes progress once a worker finishes.
func startGemmPool() {
	gemmQueueOnce.Do(func() {
		nw := max(1, runtime.GOMAXPROCS(0)-1)
		gemmQueue = make(chan gemmPart, 4*nw)
		for i := 0; i < nw; i++ {
			go func() {
				for part := range gemmQueue {
					part.job.run(part.idx)
					part.job.wg.Done()
				}
			}()
		}
	})
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
