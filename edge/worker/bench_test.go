package worker

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBenchmarks runs edge/worker/bench/bench.mjs (decision cost and cold start of each crypto
// mode against the portable build, in Node and in workerd) when LATCHKEY_WORKER_BENCH is set:
//
//	LATCHKEY_WORKER_BENCH=1 GOTOOLCHAIN=local go test -run TestBenchmarks -v ./edge/worker
//
// The figures are printed, not checked: they depend on the machine.
func TestBenchmarks(t *testing.T) {
	if os.Getenv("LATCHKEY_WORKER_BENCH") == "" {
		t.Skip("set LATCHKEY_WORKER_BENCH=1 to run the worker glue benchmarks")
	}
	node := nodeBin(t)
	wasm := modules(t, "accel-tinygo", "portable-tinygo", "accel-go", "portable-go")
	fx := writeFixture(t, fixtureDir(t), wasm, 6000)
	args := []string{filepath.Join(root, "edge", "worker", "bench", "bench.mjs"), fx}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "miniflare", "package.json")); err == nil {
		args = append(args, "--workerd")
	}
	cmd := exec.Command(node, args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	t.Log("\n" + string(out))
	if err != nil {
		t.Fatalf("bench.mjs: %v", err)
	}
}
