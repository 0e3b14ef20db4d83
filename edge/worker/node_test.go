package worker

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/policy"
)

// TestNodeGlue runs the glue's own tests (edge/worker/test/*.test.mjs, node:test) against the
// four verifier builds and the fixture written by writeFixture: the WASI shim and node:wasi,
// both crypto modes against the native core's decisions, replay soundness (rate buckets),
// refused loads, staleness, ETags, and malformed guest results.
func TestNodeGlue(t *testing.T) {
	node := nodeBin(t)
	wasm := modules(t, "accel-tinygo", "portable-tinygo", "accel-go", "portable-go")
	fx := writeFixture(t, fixtureDir(t), wasm, 0)
	cmd := exec.Command(node, "--test", "--test-reporter=spec", filepath.Join(root, "edge", "worker", "test"))
	cmd.Dir = root
	cmd.Env = joinEnv("LATCHKEY_WORKER_FIXTURE", fx)
	out, err := cmd.CombinedOutput()
	t.Log("\n" + string(out))
	if err != nil {
		t.Fatalf("node --test edge/worker/test: %v", err)
	}
	if m := regexp.MustCompile(`(?m)^ℹ pass (\d+)`).FindStringSubmatch(string(out)); m == nil || m[1] == "0" {
		t.Fatal("node --test ran no test")
	}
}

// fixtureDir is where the fixture goes: LATCHKEY_WORKER_FIXTURE_DIR when set (kept, to run
// the Node tests or benchmarks again by hand), else a temporary directory.
func fixtureDir(t *testing.T) string {
	if d := os.Getenv("LATCHKEY_WORKER_FIXTURE_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestDefaultUnavailable checks the glue's 503 for a request no guest could decide against
// the core's own rendering (policy.DefaultError), which the Go filter sends in that case.
func TestDefaultUnavailable(t *testing.T) {
	node := nodeBin(t)
	script := `import * as g from "./edge/worker/latchkey.js";
console.log(JSON.stringify([g.UNAVAILABLE_STATUS, g.UNAVAILABLE_CONTENT_TYPE, g.UNAVAILABLE_BODY]));`
	cmd := exec.Command(node, "--input-type=module", "-e", script)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v: %s", err, out)
	}
	r := policy.DefaultError(policy.ReasonUnavailable)
	if len(r.Headers) != 1 || r.Headers[0].Name != "Content-Type" {
		t.Fatalf("the core's default 503 has headers %v; the glue renders only Content-Type", r.Headers)
	}
	var got []any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %s: %v", out, err)
	}
	want := []any{float64(r.Status), r.Headers[0].Value, string(r.Body)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("glue's default 503 is %q, the core's %q", got, want)
	}
}
