package wasmbuild

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTinyGoFlagsFromMakefile(t *testing.T) {
	root := t.TempDir()
	b := &Builder{Root: root}
	if got := b.tinyGoFlags(); !slices.Equal(got, DefaultTinyGoFlags) {
		t.Fatalf("no Makefile: %v", got)
	}
	mk := "TINYGO := x\nTINYGO_FLAGS := -target=t.json -buildmode=c-shared -gc=precise\n"
	if err := os.WriteFile(filepath.Join(root, "Makefile"), []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := b.tinyGoFlags(); !slices.Equal(got, []string{"-target=t.json", "-buildmode=c-shared", "-gc=precise"}) {
		t.Fatalf("from the Makefile: %v", got)
	}
	// The repository's own Makefile gives flags that build a reactor.
	real := (&Builder{Root: "../.."}).tinyGoFlags()
	if !slices.Contains(real, "-buildmode=c-shared") || !slices.Contains(real, "-scheduler=none") {
		t.Fatalf("Makefile TINYGO_FLAGS: %v", real)
	}
}

func TestFresh(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.go"), filepath.Join(dir, "out.wasm")
	if fresh(out, []string{in}) {
		t.Fatal("a missing output is fresh")
	}
	for _, f := range []string{in, out} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	_ = os.Chtimes(in, old, old)
	if !fresh(out, []string{in}) {
		t.Fatal("an output newer than its inputs is stale")
	}
	_ = os.Chtimes(out, old.Add(-time.Minute), old.Add(-time.Minute))
	if fresh(out, []string{in}) {
		t.Fatal("an output older than an input is fresh")
	}
}

// fakeTB records how Module ended a test; Skip and Fatal stop the caller as testing's do.
type fakeTB struct{ skipped, failed string }

type stop struct{}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...); panic(stop{}) }
func (f *fakeTB) Fatal(args ...any) { f.failed = fmt.Sprint(args...); panic(stop{}) }
func (f *fakeTB) run(fn func()) *fakeTB {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stop); !ok {
				panic(r)
			}
		}
	}()
	fn()
	return f
}

// TestModuleWithoutTinyGo: a TinyGo build with no TinyGo installed skips the test, naming the
// tool, unless CI is set: then it fails.
func TestModuleWithoutTinyGo(t *testing.T) {
	t.Setenv("TINYGOROOT", filepath.Join(t.TempDir(), "none"))
	b := &Builder{Root: t.TempDir(), Dir: t.TempDir()}
	v := Variant{Name: "x", Compiler: "tinygo", Made: "-"}
	t.Setenv("CI", "")
	f := &fakeTB{}
	f.run(func() { b.Module(f, v) })
	if !strings.Contains(f.skipped, "tinygo not installed (make tools)") || f.failed != "" {
		t.Fatalf("outside CI: skipped %q, failed %q", f.skipped, f.failed)
	}
	t.Setenv("CI", "true")
	f = &fakeTB{}
	f.run(func() { b.Module(f, v) })
	if !strings.Contains(f.failed, "tinygo not installed") || f.skipped != "" {
		t.Fatalf("in CI: skipped %q, failed %q", f.skipped, f.failed)
	}
}
