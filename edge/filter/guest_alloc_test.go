package filter

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/wasmbuild"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// TestGuestAllocations counts the heap allocations of one decision inside the accelerated
// guest, built by TinyGo and by standard Go with the tag allocprobe (which adds the export
// lk_debug_mallocs). Natively TestDeciderAllocations pins zero; TinyGo allocates for
// conversions the standard compiler does without copying (string(b) == s, m[string(b)],
// bytes.Equal), so the guest's hot paths need their own check. An API-key decision, a denial,
// a token's first sight (with the cache disabled: nothing is stored) and a cached token
// allocate nothing.
func TestGuestAllocations(t *testing.T) {
	b := profile(t, "agrenting")
	for _, compiler := range []string{"tinygo", "go"} {
		t.Run("accel-"+compiler, func(t *testing.T) {
			ctx := context.Background()
			m, err := compile(ctx, probeModule(t, compiler), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer m.close(ctx)
			cases := append(benchCases(t), benchCase{"denied", &Input{Now: b.Now * 1e9, Method: "GET", Path: "/api/v1/wallet",
				Header: map[string][]string{"Authorization": {"Bearer " + b.Keys["user"] + "x"}}}, 0})
			for _, c := range cases {
				d, err := newWasmDecider(m, Config{poolSize: 1, tokenCacheSize: c.cacheSize, now: fixedClock(b.Now), trusted: []snapshot.TrustedKey{b.Trusted}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := d.SetSnapshot(Snapshot{Manifest: b.Manifest, Objects: b.Objects}); err != nil {
					t.Fatal(err)
				}
				in, _ := d.pool.tryGet()
				mallocs := in.mod.ExportedFunction("lk_debug_mallocs")
				count := func() uint64 {
					n, err := in.call(mallocs)
					if err != nil {
						t.Fatal(err)
					}
					return n
				}
				var res Result
				decide := func() {
					request(c.in, in.snap.info, &in.req)
					if err := in.decide(&res); err != nil {
						t.Fatal(err)
					}
				}
				for range 3 {
					decide()
				}
				const runs = 50
				before := count()
				for range runs {
					decide()
				}
				after := count()
				probe := count() - after // what one lk_debug_mallocs call allocates itself
				per := float64(after-before-probe) / runs
				if per != 0 {
					t.Errorf("%s: %.2f allocations per decision in the guest (%d %s), want 0", c.name, per, res.Status, res.Reason())
				} else {
					t.Logf("%s: no allocations (%d %s)", c.name, res.Status, res.Reason())
				}
				in.mod.Close(ctx)
			}
		})
	}
}

// probeModule builds the accelerated guest with the tag allocprobe, with the flags `make wasm`
// uses.
func probeModule(t *testing.T, compiler string) []byte {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "probe.wasm")
	var cmd *exec.Cmd
	switch compiler {
	case "go":
		cmd = exec.Command("go", "build", "-tags=accel,allocprobe", "-buildmode=c-shared", "-trimpath", "-o", out, "./wasm/verifier")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOTOOLCHAIN=local")
	case "tinygo":
		tg := wasmbuild.TinyGoRoot()
		bin := filepath.Join(tg, "bin", "tinygo")
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal(wasmbuild.ErrNoTinyGo)
			}
			t.Skipf("SKIP: %v", wasmbuild.ErrNoTinyGo)
		}
		args := append(append([]string{"build"}, tinyGoFlags(root)...), "-tags=accel allocprobe", "-o", out, "./wasm/verifier")
		cmd = exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "TINYGOROOT="+tg, "GOTOOLCHAIN=local")
	}
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// tinyGoFlags returns the Makefile's TINYGO_FLAGS (as wasmbuild reads them), or wasmbuild's
// defaults.
func tinyGoFlags(root string) []string {
	data, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, value, ok := strings.Cut(line, ":="); ok && strings.TrimSpace(name) == "TINYGO_FLAGS" && !strings.Contains(value, "$") {
				return strings.Fields(value)
			}
		}
	}
	return wasmbuild.DefaultTinyGoFlags
}
