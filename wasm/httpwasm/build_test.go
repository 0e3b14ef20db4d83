package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The guest builds the tests host: standard Go and TinyGo, both with the tag
// latchkey_fixedclock so that a configuration's now_override fixes the clock at the fixtures'.

const tinyGoVersion = "0.41.1" // the Makefile's TINYGO_VERSION

var errNoTinyGo = errors.New("tinygo not installed (make tools)")

type guestBuild struct {
	once sync.Once
	wasm []byte
	err  error
}

var (
	buildDir string
	builds   = map[string]*guestBuild{"go": {}, "tinygo": {}, "go-release": {}}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "httpwasm-test-")
	if err != nil {
		panic(err)
	}
	buildDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// guestWasm returns the guest built by compiler ("go", "tinygo", or "go-release": standard Go
// without the tag), skipping the test when
// TinyGo is missing outside CI.
func guestWasm(t testing.TB, compiler string) []byte {
	t.Helper()
	b := builds[compiler]
	b.once.Do(func() { b.wasm, b.err = build(compiler) })
	if errors.Is(b.err, errNoTinyGo) && os.Getenv("CI") == "" {
		t.Skip(b.err)
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.wasm
}

func build(compiler string) ([]byte, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return nil, err
	}
	out := filepath.Join(buildDir, compiler+".wasm")
	tags := "-tags=latchkey_fixedclock"
	if compiler == "go-release" { // the release build: no fixed clock
		compiler, tags = "go", "-tags="
	}
	var cmd *exec.Cmd
	switch compiler {
	case "go":
		cmd = exec.Command("go", "build", tags, "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, "./wasm/httpwasm")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOTOOLCHAIN=local")
	case "tinygo":
		troot := tinyGoRoot()
		bin := filepath.Join(troot, "bin", "tinygo")
		if _, err := os.Stat(bin); err != nil {
			return nil, errNoTinyGo
		}
		args := append([]string{"build"}, tinyGoFlags(root)...)
		cmd = exec.Command(bin, append(args, tags, "-o", out, "./wasm/httpwasm")...)
		cmd.Env = append(os.Environ(), "TINYGOROOT="+troot, "GOTOOLCHAIN=local")
	}
	cmd.Dir = root
	if outb, err := cmd.CombinedOutput(); err != nil {
		return nil, errors.New(strings.Join(cmd.Args, " ") + ": " + err.Error() + "\n" + string(outb))
	}
	return os.ReadFile(out)
}

// tinyGoRoot is where `make tools` installs TinyGo: $TINYGOROOT, else
// $HOME/.cache/latchkey/tinygo-<version> (as edge/internal/wasmbuild).
func tinyGoRoot() string {
	if r := os.Getenv("TINYGOROOT"); r != "" {
		return r
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "latchkey", "tinygo-"+tinyGoVersion)
}

// tinyGoFlags returns the Makefile's TINYGO_FLAGS, so that the test builds what `make wasm`
// builds.
func tinyGoFlags(root string) []string {
	def := []string{"-target=wasm/tinygo/wasip1.json", "-buildmode=c-shared", "-scheduler=none", "-gc=precise", "-opt=2", "-no-debug"}
	data, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		return def
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":=")
		if ok && strings.TrimSpace(name) == "TINYGO_FLAGS" && !strings.Contains(value, "$") {
			return strings.Fields(value)
		}
	}
	return def
}
