package wasmbuild

import (
	"os"
	"path/filepath"
	"slices"
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
