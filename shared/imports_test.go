// Package shared_test holds checks that span the whole verification core.
package shared_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/latchkeyhq/latchkey/"

// TestStandardLibraryOnly keeps the core portable to every Wasm host: outside its own packages it
// may import only the standard library, for native builds and for GOOS=wasip1.
func TestStandardLibraryOnly(t *testing.T) {
	for _, target := range [][2]string{{"", ""}, {"wasip1", "wasm"}} {
		name := "native"
		if target[0] != "" {
			name = target[0] + "/" + target[1]
		}
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", module+"shared/...")
			cmd.Env = os.Environ()
			if target[0] != "" {
				cmd.Env = append(cmd.Env, "GOOS="+target[0], "GOARCH="+target[1])
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			var n int
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				path, std, _ := strings.Cut(line, " ")
				n++
				if std == "true" || path == module+"shared" || strings.HasPrefix(path, module+"shared/") {
					continue
				}
				t.Errorf("shared/ depends on %s, which is neither the standard library nor shared/", path)
			}
			if n < 10 {
				t.Fatalf("go list returned only %d packages; the check looked at nothing", n)
			}
		})
	}
}

// TestBuildsForWasip1 builds every core package for GOOS=wasip1 GOARCH=wasm with standard Go.
func TestBuildsForWasip1(t *testing.T) {
	cmd := exec.Command("go", "build", module+"shared/...")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=wasip1 GOARCH=wasm go build ./shared/...: %v\n%s", err, out)
	}
}
