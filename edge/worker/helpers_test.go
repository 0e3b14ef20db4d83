package worker

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/wasmbuild"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

var (
	// root is the module root; builder builds (or finds `make wasm`'s) verifier modules.
	root    string
	builder *wasmbuild.Builder
)

func TestMain(m *testing.M) {
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "latchkey-worker-wasm-*")
	if err != nil {
		panic(err)
	}
	root, builder = r, &wasmbuild.Builder{Root: r, Dir: dir}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips a test whose tool is missing, naming it; under CI (env CI set) it fails instead,
// so that a CI machine without the tool cannot pass by skipping.
func need(t testing.TB, tool string, err error) {
	t.Helper()
	msg := tool + " is not available (" + err.Error() + "): install it with `make tools`"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func nodeBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		need(t, "node", err)
	}
	return p
}

func needMiniflare(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "node_modules", "miniflare", "package.json")); err != nil {
		need(t, "node_modules/miniflare (npm ci)", err)
	}
}

func variant(name string) wasmbuild.Variant {
	for _, v := range wasmbuild.Variants {
		if v.Name == name {
			return v
		}
	}
	panic("no verifier build " + name)
}

// modules returns the paths of the named verifier builds.
func modules(t testing.TB, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		p, err := builder.Path(variant(n))
		if errors.Is(err, wasmbuild.ErrNoTinyGo) {
			need(t, "tinygo", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[n] = p
	}
	return out
}

// jsonArg is v as a command-line argument.
func jsonArg(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// trustedText is a pinned key in controlplane/signer's text form, which the glue reads.
func trustedText(k snapshot.TrustedKey) string {
	prefix := "ed25519:"
	if k.Alg == snapshot.AlgES256 {
		prefix = "es256:"
	}
	return prefix + base64.RawURLEncoding.EncodeToString(k.Public)
}

// jsProcess is a Node process serving a test host (testhost/serve-*.mjs) on a local port.
type jsProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	url    string
	output *tail
}

// startJS starts testhost/<script> with args and waits for it to listen.
func startJS(t testing.TB, script string, args ...string) *jsProcess {
	t.Helper()
	var err error
	p := &jsProcess{output: &tail{}}
	p.cmd = exec.Command(nodeBin(t), append([]string{filepath.Join(root, "edge", "worker", "testhost", script)}, args...)...)
	p.cmd.Dir = root
	p.cmd.Stderr = p.output
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, "LISTEN "); ok {
				select {
				case ready <- u:
				default:
				}
				continue
			}
			_, _ = p.output.Write([]byte(line + "\n"))
		}
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			p.close()
			t.Fatalf("%s exited before listening: %s", script, p.output)
		}
		p.url = u
	case <-time.After(2 * time.Minute):
		p.close()
		t.Fatalf("%s did not listen within 2 minutes: %s", script, p.output)
	}
	return p
}

// close ends the process: closing stdin asks it to shut down (Miniflare stops workerd), and a
// process that does not is killed.
func (p *jsProcess) close() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// tail keeps the last bytes a process wrote, for failure messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8192 {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-8192:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
