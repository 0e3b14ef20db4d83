package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// copySnapshots copies the published snapshots away from the publisher, so the test can
// tamper with them while the publisher keeps running.
func copySnapshots(t *testing.T, s *testServer) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "snapshots")
	if err := os.CopyFS(dst, os.DirFS(s.snapDir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestSnapshotPublishAndInspect(t *testing.T) {
	s := startServer(t)
	env := s.env()
	ok(t, env, "keys", "create", "--type", "live", "--org", "acme")

	out := ok(t, env, "snapshot", "publish")
	if !strings.Contains(out, "version:") || !strings.Contains(out, "keys:") {
		t.Fatalf("snapshot publish:\n%s", out)
	}
	var st apiStatus
	if err := json.Unmarshal([]byte(ok(t, env, "snapshot", "publish", "--json")), &st); err != nil || st.Version == 0 || st.Keys != 1 {
		t.Fatalf("snapshot publish --json: %v %+v", err, st)
	}
	if out := ok(t, env, "snapshot", "status"); !strings.Contains(out, "version:") {
		t.Fatalf("snapshot status:\n%s", out)
	}

	dir := copySnapshots(t, s)
	pinned := s.cp.ManifestKey.PublicText()

	// Human report: realm, version, times, objects and counts.
	out = ok(t, env, "snapshot", "inspect", "--dir", dir, "--trusted-key", pinned)
	for _, want := range []string{"realm:", "default", "version:", "issued:", "expires:", "signature:", pinned,
		"objects (every digest checked)", "meta", "keys:", "orgs:", "signing keys:", "revoked tokens:", "revoked sessions:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect output lacks %q:\n%s", want, out)
		}
	}

	// JSON report, with what the store holds: one key of org acme, one signing key.
	var rep inspectReport
	if err := json.Unmarshal([]byte(ok(t, env, "snapshot", "inspect", "--dir", dir, "--trusted-key", pinned, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Realm != "default" || rep.Version < st.Version || rep.Expired || len(rep.Objects) < 2 ||
		rep.Counts["keys"] != 1 || rep.Counts["signing_keys"] != 1 || rep.Counts["orgs"]+rep.Counts["delta_orgs"] < 1 {
		t.Fatalf("inspect --json: %+v", rep)
	}
	for _, o := range rep.Objects {
		if o.Size == 0 || len(o.SHA256) != 64 {
			t.Fatalf("object %+v", o)
		}
	}

	// The control plane's own manifest key, from its data directory (flag or environment),
	// and the snapshot dir it publishes to by default.
	ok(t, env, "snapshot", "inspect", "--dir", dir, "--data-dir", s.dataDir)
	ok(t, map[string]string{"LATCHKEY_DATA_DIR": s.dataDir}, "snapshot", "inspect")

	// Over HTTP, as a CDN serves the bucket.
	files := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer files.Close()
	if out := ok(t, nil, "snapshot", "inspect", "--url", files.URL, "--trusted-key", pinned); !strings.Contains(out, files.URL) {
		t.Fatalf("inspect --url:\n%s", out)
	}

	// Nothing for an unknown realm.
	fails(t, nil, 1, `no manifest for realm nope`, "snapshot", "inspect", "--dir", dir, "--trusted-key", pinned, "--realm", "nope")
}

func TestSnapshotInspectRefusesForgedManifest(t *testing.T) {
	s := startServer(t)
	env := s.env()
	ok(t, env, "snapshot", "publish")
	pinned := s.cp.ManifestKey.PublicText()

	// Signed by another control plane.
	other := startServer(t)
	fails(t, nil, 1, `REFUSED: its signature does not verify under the trusted key`,
		"snapshot", "inspect", "--dir", copySnapshots(t, s), "--trusted-key", other.cp.ManifestKey.PublicText())

	// A byte of the manifest body changed.
	dir := copySnapshots(t, s)
	path := filepath.Join(dir, "default", "manifest")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{len(data) - 1, len(data) / 2} {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x01
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		fails(t, nil, 1, `manifest default/manifest in .* REFUSED`, "snapshot", "inspect", "--dir", dir, "--trusted-key", pinned)
	}
}

func TestSnapshotInspectRefusesTamperedObject(t *testing.T) {
	s := startServer(t)
	env := s.env()
	ok(t, env, "keys", "create", "--type", "live")
	ok(t, env, "snapshot", "publish")
	pinned := s.cp.ManifestKey.PublicText()

	var rep inspectReport
	dir := copySnapshots(t, s)
	if err := json.Unmarshal([]byte(ok(t, nil, "snapshot", "inspect", "--dir", dir, "--trusted-key", pinned, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	for i, obj := range rep.Objects {
		t.Run(obj.Kind+strconv.Itoa(i), func(t *testing.T) {
			dir := copySnapshots(t, s)
			path := filepath.Join(dir, "default", "objects", obj.Name)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Same size, one bit changed: only the digest can tell.
			data[len(data)-1] ^= 0x01
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			fails(t, nil, 1, `REFUSED: .*digest`, "snapshot", "inspect", "--dir", dir, "--trusted-key", pinned)
			// Gone altogether.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			fails(t, nil, 1, `object default/objects/`+obj.Name+` \(named by the manifest\)`, "snapshot", "inspect", "--dir", dir, "--trusted-key", pinned)
		})
	}
}
