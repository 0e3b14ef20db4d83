// Package s3test starts a real S3-protocol server (versitygw, installed by `make tools`) for
// tests, so S3 code is tested against the protocol rather than an imitation. Without the
// binary a test skips naming it; with CI set it fails.
package s3test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Env names a versitygw binary to use instead of searching for one.
const Env = "LATCHKEY_VERSITYGW"

// versitygwPath finds the versitygw binary: LATCHKEY_VERSITYGW, then where `make tools`
// installs it, then PATH. Without it the test skips (fails in CI).
func Path(t testing.TB) string {
	if p := os.Getenv(Env); p != "" {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "latchkey", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("versitygw not found (%s, ~/.cache/latchkey/bin, PATH): run make tools", Env)
	}
	t.Skip("versitygw (make tools) not found: skipping the S3 tests")
	return ""
}

// Access and Secret are the root credentials of every Server.
const Access, Secret = "latchkeytest", "latchkey-test-secret-key"

// Server is a versitygw serving a posix directory on a loopback port.
type Server struct {
	Endpoint, Access, Secret string
}

// Start starts a gateway for the test (about 0.1 s) serving a temporary directory
// on a free loopback port with root credentials, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Path(t)
	root := t.TempDir()
	access, secret := Access, Secret
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(bin, "--port", addr, "--access", access, "--secret", secret, "--quiet", "posix", root)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		if err := waitListening(addr, exited); err != nil {
			stop()
			if attempt < 3 {
				continue // most likely the port was taken in between
			}
			t.Fatalf("versitygw did not start: %v\n%s", err, out.String())
		}
		t.Cleanup(stop)
		return &Server{Endpoint: "http://" + addr, Access: access, Secret: secret}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr answers HTTP, or the process exits.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		if resp, err := client.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no answer within 30s")
}
