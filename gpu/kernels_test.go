package gpu

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/houlsby/adapters/backend"
)

// definedKernels returns the extern "C" __global__ kernels a .cu source
// defines, expanding the one level of macros the sources use to stamp out
// dtype variants: `#define FAM(X, W, sfx) ... void name_##sfx(` followed by
// invocations `FAM(float, bf16, f32_bf16)` at the start of a line.
func definedKernels(src string) []string {
	src = strings.ReplaceAll(src, "\\\n", " ") // join continued macro lines
	defRe := regexp.MustCompile(`^#define (\w+)\(([^)]*)\)(.*)$`)
	kernRe := regexp.MustCompile(`extern "C" __global__ void (\w+?)(?:##(\w+))?\s*\(`)
	callRe := regexp.MustCompile(`^(\w+)\(([^)]*)\)\s*$`)
	type template struct {
		prefix string
		param  int // index of the pasted macro parameter
	}
	macros := map[string][]template{}
	var names []string
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			out = append(out, strings.TrimSpace(p))
		}
		return out
	}
	for _, line := range strings.Split(src, "\n") {
		if m := defRe.FindStringSubmatch(line); m != nil {
			params := split(m[2])
			for _, k := range kernRe.FindAllStringSubmatch(m[3], -1) {
				if i := slices.Index(params, k[2]); k[2] != "" && i >= 0 {
					macros[m[1]] = append(macros[m[1]], template{k[1], i})
				}
			}
			continue
		}
		if strings.HasPrefix(line, "#") || strings.HasPrefix(strings.TrimSpace(line), "//") {
			continue
		}
		for _, k := range kernRe.FindAllStringSubmatch(line, -1) {
			if k[2] == "" {
				names = append(names, k[1])
			}
		}
		if m := callRe.FindStringSubmatch(line); m != nil {
			args := split(m[2])
			for _, tp := range macros[m[1]] {
				if tp.param < len(args) {
					names = append(names, tp.prefix+args[tp.param])
				}
			}
		}
	}
	return names
}

// TestListedKernelsAreDefined: every kernel of the list (kernels.go) is
// defined in its family's kernels/<file>.cu, and every kernel the sources
// define is listed.
func TestListedKernelsAreDefined(t *testing.T) {
	files, err := filepath.Glob("../kernels/*.cu")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernels/*.cu (%v)", err)
	}
	defined := map[string]string{} // kernel → file
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file := strings.TrimSuffix(filepath.Base(f), ".cu")
		names := definedKernels(string(src))
		if len(names) == 0 {
			t.Errorf("%s: no kernels found (the parser does not understand it)", f)
		}
		for _, k := range names {
			if other, ok := defined[k]; ok {
				t.Errorf("kernel %s defined in %s.cu and %s.cu", k, other, file)
			}
			defined[k] = file
		}
	}
	listed := map[string]bool{}
	for _, fam := range kernelFamilies {
		for _, k := range fam.names {
			if listed[k] {
				t.Errorf("kernel %s listed twice", k)
			}
			listed[k] = true
			switch file, ok := defined[k]; {
			case !ok:
				t.Errorf("kernel %s (family %s) is listed but no kernels/*.cu defines it", k, fam.base)
			case file != fam.file:
				t.Errorf("kernel %s is defined in kernels/%s.cu, the list says %s.cu", k, file, fam.file)
			}
		}
	}
	for k, file := range defined {
		if !listed[k] {
			t.Errorf("kernels/%s.cu defines %s, which gpu/kernels.go does not list", file, k)
		}
	}
	if want := len(KernelNames()); len(listed) != want {
		t.Errorf("KernelNames has %d names, the families %d", want, len(listed))
	}
}

// TestReadmeMentionsEveryFamily: kernels/README.md documents every family
// (its base name followed by a suffix, an argument list or a space).
func TestReadmeMentionsEveryFamily(t *testing.T) {
	readme, err := os.ReadFile("../kernels/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range kernelFamilies {
		re := regexp.MustCompile(`(^|[^\w])` + regexp.QuoteMeta(fam.base) + `(_<|_f32|_bf16|\(| |/|$)`)
		if !re.Match(readme) {
			t.Errorf("kernels/README.md does not mention the family %s (kernels/%s.cu)", fam.base, fam.file)
		}
	}
}

// TestKernelOfPicksTheVariant: of maps dtypes to the suffix letters.
func TestKernelOfPicksTheVariant(t *testing.T) {
	f, b := &Tensor{dt: backend.F32}, &Tensor{dt: backend.BF16}
	for _, tc := range []struct {
		got, want string
	}{
		{kAdd.of(b).name, "add_bf16"},
		{kBiasAdd.of(f, b).name, "bias_add_f32_bf16"},
		{kBiasAdd.of(b, f).name, "bias_add_bf16_f32"},
		{kGemmWMMA.of(b, f, b).name, "gemm_wmma_bfb"},
		{kGemmF32.of(f, f, f).name, "gemm_f32_fff"},
		{kAdamW.of().name, "adamw_f32"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("kAdd.of() with no tensor did not panic")
		}
	}()
	kAdd.of()
}

// TestLaunchersUseListedNames: the launchers reach Device.Launch only with a
// kernel's name from the list: launch takes a kernel (which only
// kernelFamily.of makes), and a direct call of Launch must pass k.name of
// such a value, never a string literal or an expression building one.
// (Package gpu_test also records every name the launchers launch on the
// emulator and checks it against KernelNames.)
func TestLaunchersUseListedNames(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	calls := 0
	for _, f := range files {
		// Device wrappers forward their argument: select_cuda.go to package
		// cuda, count.go (CountingDevice) to the device it wraps, graph.go
		// (the recorder and ReplayGraphs) the launches it queued.
		if strings.HasSuffix(f, "_test.go") || f == "select_cuda.go" || f == "count.go" || f == "graph.go" {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Launch" || len(call.Args) == 0 {
				return true
			}
			calls++
			if arg, ok := call.Args[0].(*ast.SelectorExpr); !ok || arg.Sel.Name != "name" {
				t.Errorf("%s: Launch with kernel argument %s; want a listed kernel's .name", fset.Position(call.Pos()), exprString(call.Args[0]))
			}
			return true
		})
	}
	if calls == 0 {
		t.Fatal("found no call of Launch; the test no longer sees the launchers")
	}
}

// exprString renders an expression for an error message.
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Value
	case *ast.Ident:
		return e.Name
	}
	return "(an expression)"
}
