package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromiumPath is the Debian Chromium `make tools` installs.
const chromiumPath = "/usr/bin/chromium"

// repoRoot is the directory holding go.mod, found upward from the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// browserTools returns node and checks Chromium and playwright-core are installed. A missing
// one skips the test, except in CI.
func browserTools(t *testing.T, root string) string {
	t.Helper()
	missing := func(what, fix string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: %s", what, fix)
		}
		t.Skipf("SKIP: %s is not installed (%s)", what, fix)
	}
	const makeTools = "make tools installs it"
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node", "install Node.js 20 or later, then run make tools")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing("Chromium ("+chromiumPath+")", makeTools)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core ("+filepath.Join(root, "node_modules", "playwright-core")+")", makeTools)
	}
	return node
}

// TestBrowser opens latchkey dev's two pages in headless Chromium (testdata/browser.mjs, with
// playwright-core) and uses them as a person would: the session handoff page mints a token
// through the dev backend, streams and steers through the edge, revokes the session and sees
// the edge's 401 on the next steer and on the stream's reconnect, then sees a short-lived
// token refused once expired; the keys page creates, copies, rotates and revokes a key and
// shows the API's errors. Screenshots go to $LATCHKEY_SCREENSHOTS (default
// <repo>/.cache/screenshots).
func TestBrowser(t *testing.T) {
	root := repoRoot(t)
	node := browserTools(t, root)
	shots := os.Getenv("LATCHKEY_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(root, ".cache", "screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	// Logged at info level, to check below that no credential reaches the log.
	d := startDevOutput(t)
	s := d.setup

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "browser.mjs"))
	cmd.Env = append(os.Environ(),
		"LATCHKEY_EDGE="+s.Edge, "LATCHKEY_CONTROL_PLANE="+s.ControlPlane, "LATCHKEY_ADMIN_KEY="+s.AdminKey,
		"LATCHKEY_SCREENSHOTS="+shots, "LATCHKEY_CHROMIUM="+chromiumPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("the browser script did not finish within 5 minutes:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("the browser script failed (%v):\n%s", err, out.String())
	}
	t.Logf("browser script:\n%s", out.String())

	var pictures []string
	for _, m := range regexp.MustCompile(`(?m)^screenshot: (.+)$`).FindAllStringSubmatch(out.String(), -1) {
		pictures = append(pictures, m[1])
	}
	for _, want := range []string{"handoff.png", "handoff-expired.png", "keys-created.png", "keys.png", "keys-error.png"} {
		found := false
		for _, p := range pictures {
			if filepath.Base(p) == want {
				found = true
				b, err := os.ReadFile(p)
				if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
					t.Errorf("screenshot %s is not a PNG: %v", p, err)
				}
				t.Logf("screenshot %s", p)
			}
		}
		if !found {
			t.Errorf("the script saved no %s", want)
		}
	}

	// Tokens travel in URLs (?token=) and headers; none may reach the log, nor any API key.
	logged := d.stderr.String()
	if !strings.Contains(logged, "snapshot published") {
		t.Fatalf("dev logged nothing at info level; the check below would be vacuous:\n%s", logged)
	}
	if regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}|token=[A-Za-z0-9_.-]{10,}`).MatchString(logged) || secretRE.MatchString(logged) {
		t.Errorf("a credential reached dev's log:\n%s", logged)
	}
}
