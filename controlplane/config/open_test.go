package config_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/config"
	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store/storetest"
)

// backends return a database URL for a fresh, empty database, or "" for SQLite in the data
// directory (the default).
var backends = []struct {
	name  string
	newDB func(t *testing.T) string
}{
	{"sqlite", func(*testing.T) string { return "" }},
	{"postgres", postgresURL},
}

func postgresURL(t *testing.T) string { return storetest.PostgresURL(t, "latchkey_cfg_") }

func open(t *testing.T, c config.Config, env map[string]string) (*config.ControlPlane, error) {
	t.Helper()
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	cp, err := config.Open(context.Background(), c, config.Options{Getenv: envOf(env)})
	if err == nil {
		t.Cleanup(func() { cp.Close() })
	}
	return cp, err
}

func TestOpenFreshThenReopen(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			c := config.Config{DataDir: dir, DatabaseURL: b.newDB(t)}
			first, err := open(t, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(first.AdminKey, "lk_admin_") {
				t.Fatalf("first start: admin key %q", first.AdminKey)
			}
			if strings.Contains(first.String(), first.AdminKey) {
				t.Fatalf("String() shows the admin key: %s", first)
			}
			for _, f := range []string{"master.key", "manifest.key"} {
				fi, err := os.Stat(filepath.Join(dir, f))
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("%s: %v %v", f, fi, err)
				}
			}
			pub := first.ManifestKey.PublicText()
			first.Close()

			again, err := open(t, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if again.AdminKey != "" || again.ManifestKey.PublicText() != pub {
				t.Fatalf("second start: admin key printed again (%v) or manifest key changed", again.AdminKey != "")
			}
		})
	}
}

// A replica (or a restart on a new host) pointed at an existing database must bring that
// database's master key and manifest key: making new ones would lock it out of its own
// signing keys and break every pinned edge, so Open refuses and writes nothing.
func TestOpenNeverInventsKeysForAnExistingDatabase(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			first := filepath.Join(t.TempDir(), "first")
			db := b.newDB(t)
			if db == "" {
				db = "sqlite:" + filepath.Join(first, config.DatabaseFile)
			}
			cp, err := open(t, config.Config{DataDir: first, DatabaseURL: db}, nil)
			if err != nil {
				t.Fatal(err)
			}
			cp.Close()

			empty := filepath.Join(t.TempDir(), "replica")
			_, err = open(t, config.Config{DataDir: empty, DatabaseURL: db}, nil)
			if !errors.Is(err, signer.ErrMasterKey) || !strings.Contains(err.Error(), "already holds realms") {
				t.Fatalf("replica without keys: %v", err)
			}
			if _, statErr := os.Stat(filepath.Join(empty, "master.key")); !errors.Is(statErr, os.ErrNotExist) {
				t.Fatalf("a master key was created for an existing database: %v", statErr)
			}

			// Another master key (with a manifest key of its own) does not open the realm's
			// signing key: refused at start, naming the variable to check.
			other := randomKey(t)
			otherDir := filepath.Join(t.TempDir(), "other")
			if _, err := open(t, config.Config{DataDir: otherDir}, map[string]string{signer.EnvMasterKey: other}); err != nil {
				t.Fatal(err)
			}
			_, err = open(t, config.Config{DataDir: otherDir, DatabaseURL: db}, map[string]string{signer.EnvMasterKey: other})
			if !errors.Is(err, config.ErrKeyMismatch) || !errors.Is(err, signer.ErrSealed) || !strings.Contains(err.Error(), signer.EnvMasterKey) {
				t.Fatalf("wrong master key: %v", err)
			}

			// The right keys, given the way a second replica gets them (environment and a
			// mounted manifest key file), open it.
			master, err := os.ReadFile(filepath.Join(first, "master.key"))
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{
				signer.EnvMasterKey:       base64.StdEncoding.EncodeToString(master),
				signer.EnvManifestKeyFile: filepath.Join(first, "manifest.key"),
			}
			replica, err := open(t, config.Config{DataDir: empty, DatabaseURL: db}, env)
			if err != nil {
				t.Fatal(err)
			}
			if replica.AdminKey != "" {
				t.Fatal("a replica bootstrapped a second admin key")
			}
		})
	}
}

func randomKey(t *testing.T) string {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// Serve answers on the listener, publishes, and returns nil once its context ends.
func TestServeShutsDownGracefully(t *testing.T) {
	dir := t.TempDir()
	cp, err := open(t, config.Config{DataDir: dir, ShutdownTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %d", resp.StatusCode)
	}
	// Publications land in the snapshot directory.
	if _, err := cp.Publisher.PublishNow(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", "default", "manifest")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/health"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}
