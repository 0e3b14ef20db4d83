// Package wasmbuild builds latchkey's Wasm guests for tests and benchmarks of their hosts: the
// verifier (wasm/verifier: accelerated and portable, each with TinyGo and with standard Go),
// the http-wasm and proxy-wasm guests, with the Makefile's flags. It reuses `make`'s outputs
// when they are newer than every source, and otherwise builds into a directory the caller
// owns.
package wasmbuild

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Variant is one build of the guest.
type Variant struct {
	// Name is the build's file name without .wasm, and the host name in test names
	// ("accel-tinygo" is hosted as "wazero-accel-tinygo"). It names the build within a
	// Builder: two variants of one Builder need two names.
	Name     string
	Accel    bool   // the build tag "accel"
	Compiler string // "tinygo" or "go"
	// Package is the guest to build, relative to the module root; "" is "./wasm/verifier".
	Package string
	// Tags are further build tags (a test build's "latchkey_fixedclock").
	Tags []string
	// Made is the `make` output that serves instead of a build while it is newer than every
	// source, relative to the module root: "" is wasm/verifier/build/<Name>.wasm for the
	// verifier and nothing for other guests; "-" is never.
	Made string
}

func (v Variant) pkg() string {
	if v.Package == "" {
		return "./wasm/verifier"
	}
	return v.Package
}

func (v Variant) made() string {
	switch {
	case v.Made == "-":
		return ""
	case v.Made != "":
		return v.Made
	case v.pkg() == "./wasm/verifier":
		return filepath.Join("wasm", "verifier", "build", v.Name+".wasm")
	}
	return ""
}

func (v Variant) tags() string {
	tags := append([]string(nil), v.Tags...)
	if v.Accel {
		tags = append(tags, "accel")
	}
	return strings.Join(tags, ",")
}

// Variants are the four builds, TinyGo (the release build) first.
var Variants = []Variant{
	{Name: "accel-tinygo", Accel: true, Compiler: "tinygo"},
	{Name: "portable-tinygo", Compiler: "tinygo"},
	{Name: "accel-go", Accel: true, Compiler: "go"},
	{Name: "portable-go", Compiler: "go"},
}

// ErrNoTinyGo means TinyGo is not installed where the Makefile puts it (`make tools`).
var ErrNoTinyGo = errors.New("tinygo not installed (make tools)")

// TinyGoVersion is the TinyGo the Makefile installs.
const TinyGoVersion = "0.41.1"

// Builder builds variants into Dir, once each.
type Builder struct {
	// Root is the module root (the directory holding go.mod).
	Root string
	// Dir receives builds that `make wasm`'s outputs could not provide.
	Dir string

	mu    sync.Mutex
	built map[string]result
	bytes map[string][]byte // Module's reads, by path
}

type result struct {
	path string
	err  error
}

// Path returns the path of v's module, building it if needed.
func (b *Builder) Path(v Variant) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.built[v.Name]; ok {
		return r.path, r.err
	}
	if b.built == nil {
		b.built = map[string]result{}
	}
	path, err := b.build(v)
	b.built[v.Name] = result{path, err}
	return path, err
}

func (b *Builder) build(v Variant) (string, error) {
	if m := v.made(); m != "" {
		if made := filepath.Join(b.Root, m); fresh(made, b.inputs()) {
			return made, nil
		}
	}
	out := filepath.Join(b.Dir, v.Name+".wasm")
	tags := v.tags()
	var cmd *exec.Cmd
	switch v.Compiler {
	case "go":
		cmd = exec.Command("go", "build", "-tags="+tags, "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, v.pkg())
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOTOOLCHAIN=local")
	case "tinygo":
		root := TinyGoRoot()
		bin := filepath.Join(root, "bin", "tinygo")
		if _, err := os.Stat(bin); err != nil {
			return "", ErrNoTinyGo
		}
		args := append([]string{"build"}, b.tinyGoFlags()...)
		cmd = exec.Command(bin, append(args, "-tags="+tags, "-o", out, v.pkg())...)
		cmd.Env = append(os.Environ(), "TINYGOROOT="+root, "GOTOOLCHAIN=local")
	default:
		return "", errors.New("wasmbuild: unknown compiler " + v.Compiler)
	}
	cmd.Dir = b.Root
	if outb, err := cmd.CombinedOutput(); err != nil {
		return "", errors.New("wasmbuild: " + strings.Join(cmd.Args, " ") + ": " + err.Error() + "\n" + string(outb))
	}
	return out, nil
}

// DefaultTinyGoFlags are the TinyGo flags used when the Makefile's TINYGO_FLAGS cannot be
// read.
var DefaultTinyGoFlags = []string{"-target=wasm/tinygo/wasip1.json", "-buildmode=c-shared", "-scheduler=none", "-gc=precise", "-opt=2", "-no-debug"}

// tinyGoFlags returns the Makefile's TINYGO_FLAGS, so that tests build what `make wasm`
// builds.
func (b *Builder) tinyGoFlags() []string {
	data, err := os.ReadFile(filepath.Join(b.Root, "Makefile"))
	if err != nil {
		return DefaultTinyGoFlags
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":=")
		if ok && strings.TrimSpace(name) == "TINYGO_FLAGS" && !strings.Contains(value, "$") {
			return strings.Fields(value)
		}
	}
	return DefaultTinyGoFlags
}

// TinyGoRoot is where `make tools` installs TinyGo: $TINYGOROOT when set, else
// $HOME/.cache/latchkey/tinygo-<version>.
func TinyGoRoot() string {
	if r := os.Getenv("TINYGOROOT"); r != "" {
		return r
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "latchkey", "tinygo-"+TinyGoVersion)
}

// inputs are the files a guest build may depend on: the Go files of the guests and the core
// (guests import nothing else of the module; go.mod and go.sum are left out, as they change
// with every dependency of the rest of the module, and the guests' few dependencies are
// pinned), the TinyGo target and the Makefile (its flags).
func (b *Builder) inputs() []string {
	var files []string
	for _, dir := range []string{"wasm", "shared"} {
		_ = filepath.WalkDir(filepath.Join(b.Root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && (d.Name() == "build" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
			return nil
		})
	}
	for _, f := range []string{"wasm/tinygo/wasip1.json", "Makefile"} {
		files = append(files, filepath.Join(b.Root, f))
	}
	return files
}

// fresh reports whether out exists and is newer than every input.
func fresh(out string, inputs []string) bool {
	st, err := os.Stat(out)
	if err != nil {
		return false
	}
	var newest time.Time
	for _, f := range inputs {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	return !newest.IsZero() && st.ModTime().After(newest)
}

// TB is the part of testing.TB that Module uses.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
}

// Module returns v's module bytes for a test or benchmark, building the module if needed and
// reading it once per Builder. A missing TinyGo skips the test, naming the tool and `make
// tools`, except when the environment variable CI is set: there it fails.
func (b *Builder) Module(t TB, v Variant) []byte {
	t.Helper()
	path, err := b.Path(v)
	if errors.Is(err, ErrNoTinyGo) && os.Getenv("CI") == "" {
		t.Skip(v.Name + ": " + err.Error())
	}
	if err != nil {
		t.Fatal(v.Name + ": " + err.Error())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.bytes[path]; ok {
		return m
	}
	m, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.bytes == nil {
		b.bytes = map[string][]byte{}
	}
	b.bytes[path] = m
	return m
}

// Temp returns a Builder for the module rooted at root (a test passes "../.." and the like),
// building into a new temporary directory, and the function that removes that directory.
func Temp(root string) (*Builder, func(), error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "latchkey-wasmbuild-")
	if err != nil {
		return nil, nil, err
	}
	return &Builder{Root: abs, Dir: dir}, func() { _ = os.RemoveAll(dir) }, nil
}
