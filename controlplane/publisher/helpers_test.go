package publisher

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/controlplane/store/storetest"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// t0 is the tests' clock origin.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// backend names a store the tests run against.
type backend struct {
	name string
	open func(t testing.TB) store.Store
}

var backends = []backend{{"sqlite", openSQLite}, {"postgres", openPostgres}}

func openSQLite(t testing.TB) store.Store {
	return openStore(t, storetest.SQLiteURL(t))
}

// openPostgres opens a store in a schema of its own (see storetest.PostgresURL).
func openPostgres(t testing.TB) store.Store {
	return openStore(t, storetest.PostgresURL(t, "latchkey_pub_"))
}

func openStore(t testing.TB, u string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	return s
}

// policyYAML returns the test policy for realm.
func policyYAML(t testing.TB, realm string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("REALM"), []byte(realm))
}

// manifestKey is a manifest signer that, like the control plane's, says which key verifies it.
type manifestKey struct {
	snapshot.Ed25519Signer
}

func (m manifestKey) Trusted() snapshot.TrustedKey {
	return snapshot.TrustedKey{Alg: snapshot.AlgEd25519, Public: m.Key.Public().(ed25519.PublicKey)}
}

func newManifestKey(t testing.TB) manifestKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return manifestKey{snapshot.Ed25519Signer{Key: priv, ID: "test-manifest"}}
}

// env is one realm in a store, with its token signing key and the manifest key.
type env struct {
	t        testing.TB
	st       store.Store
	realm    string
	clock    *clock
	signer   manifestKey
	tokenKey ed25519.PrivateKey
	tokenKID string
	n        int
}

// newEnv creates realm in st with the test policy and an Ed25519 token signing key.
func newEnv(t testing.TB, st store.Store, realm string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, st: st, realm: realm, clock: newClock(), signer: newManifestKey(t), tokenKID: "sk_" + realm}
	if _, err := st.CreateRealm(ctx, realm, t0); err != nil {
		t.Fatalf("CreateRealm: %v", err)
	}
	if _, err := st.PutPolicy(ctx, store.Policy{Realm: realm, YAML: policyYAML(t, realm), CreatedAt: t0}); err != nil {
		t.Fatalf("PutPolicy: %v", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.tokenKey = priv
	if _, err := st.CreateSigningKey(ctx, store.SigningKey{KID: e.tokenKID, Realm: realm, Alg: store.AlgEdDSA, Public: pub, CreatedAt: t0}); err != nil {
		t.Fatalf("CreateSigningKey: %v", err)
	}
	return e
}

// keySpec describes a key to create.
type keySpec struct {
	typ, org string
	scopes   []string
	agents   []string
}

// createKey stores a new key and returns its plaintext and stored form.
func (e *env) createKey(ks keySpec) (string, store.APIKey) {
	e.t.Helper()
	prefix := map[string]string{"live": "lk_live_", "agent": "lk_agent_"}[ks.typ]
	if prefix == "" {
		prefix = "lk_" + ks.typ + "_"
	}
	k, err := apikey.Spec{Prefix: prefix, Format: apikey.FormatBase62CRC32}.Generate(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	text := k.Reveal()
	h := apikey.Hash(sha256.Sum256([]byte(text)))
	e.n++
	sk, err := e.st.CreateKey(context.Background(), store.APIKey{
		ID: h.ID().String(), Realm: e.realm, Hash: h, Prefix: prefix, Last4: k.Last4(), Name: "test key",
		Type: ks.typ, Scopes: ks.scopes, Org: ks.org, Agents: ks.agents, CreatedAt: e.clock.Now(),
	})
	if err != nil {
		e.t.Fatalf("CreateKey: %v", err)
	}
	return text, sk
}

func (e *env) revoke(id string) {
	e.t.Helper()
	if _, err := e.st.RevokeKey(context.Background(), e.realm, id, e.clock.Now()); err != nil {
		e.t.Fatalf("RevokeKey: %v", err)
	}
}

// newPublisher returns a publisher of e's store into target.
func (e *env) newPublisher(target Target, mod func(*Options)) *Publisher {
	e.t.Helper()
	o := Options{Store: e.st, Target: target, Signer: e.signer, Now: e.clock.Now}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// edgeLoad does what an edge does with a target: verify the manifest under the pinned key,
// check it is fresh, fetch and check every object, and compile the policy.
func edgeLoad(t testing.TB, target Target, realm string, trusted snapshot.TrustedKey, now time.Time, held uint64) *verifier.State {
	t.Helper()
	ctx := context.Background()
	data, _, err := target.Get(ctx, ManifestName(realm))
	if err != nil {
		t.Fatalf("get manifest: %v", err)
	}
	m, err := snapshot.VerifyManifest(data, []snapshot.TrustedKey{trusted}, hostcrypto.Std)
	if err != nil {
		t.Fatalf("VerifyManifest: %v", err)
	}
	if err := m.CheckFresh(now.Unix(), held); err != nil {
		t.Fatalf("CheckFresh: %v", err)
	}
	objs := make([][]byte, len(m.Objects))
	for i, r := range m.Objects {
		if objs[i], _, err = target.Get(ctx, ObjectName(realm, r.Name)); err != nil {
			t.Fatalf("get object %s: %v", r.Name, err)
		}
	}
	var delta []byte
	if m.Delta != nil {
		if delta, _, err = target.Get(ctx, ObjectName(realm, m.Delta.Name)); err != nil {
			t.Fatalf("get delta %s: %v", m.Delta.Name, err)
		}
	}
	v, err := snapshot.Open(m, objs, delta, hostcrypto.Std)
	if err != nil {
		t.Fatalf("snapshot.Open: %v", err)
	}
	s, err := verifier.NewState(v)
	if err != nil {
		t.Fatalf("verifier.NewState: %v", err)
	}
	return s
}

// decide runs one request through a fresh engine over s.
func decide(s *verifier.State, now time.Time, method, path string, headers ...string) *verifier.Decision {
	eng := verifier.NewEngine(verifier.Options{TokenCacheSize: -1})
	eng.SetState(s)
	r := &verifier.Request{Now: now.UnixNano(), Method: []byte(method), Path: []byte(path)}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, verifier.Header{Name: []byte(strings.ToLower(headers[i])), Value: []byte(headers[i+1])})
	}
	return eng.Decide(r)
}

func bearer(key string) []string { return []string{"authorization", "Bearer " + key} }

func wantStatus(t testing.TB, d *verifier.Decision, status int, what string) {
	t.Helper()
	if d.Status != status {
		t.Fatalf("%s: status %d (reason %v), want %d", what, d.Status, d.Reason, status)
	}
}

// recordingTarget wraps a Target and records the order of writes.
type recordingTarget struct {
	Target
	mu     sync.Mutex
	writes []string // "object <name>" or "manifest <name>"
	// failManifest, when set, makes PutManifest fail with it (after recording).
	failManifest error
}

func (r *recordingTarget) PutObject(ctx context.Context, name string, data []byte) error {
	err := r.Target.PutObject(ctx, name, data)
	if err == nil {
		r.mu.Lock()
		r.writes = append(r.writes, "object "+name)
		r.mu.Unlock()
	}
	return err
}

func (r *recordingTarget) PutManifest(ctx context.Context, name string, data []byte, prev string) (string, error) {
	r.mu.Lock()
	fail := r.failManifest
	r.mu.Unlock()
	if fail != nil {
		return "", fail
	}
	etag, err := r.Target.PutManifest(ctx, name, data, prev)
	if err == nil {
		r.mu.Lock()
		r.writes = append(r.writes, "manifest "+name)
		r.mu.Unlock()
	}
	return etag, err
}

func (r *recordingTarget) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

func (r *recordingTarget) manifests() int {
	n := 0
	for _, w := range r.log() {
		if strings.HasPrefix(w, "manifest ") {
			n++
		}
	}
	return n
}

func newDirTarget(t testing.TB) *DirTarget {
	t.Helper()
	d, err := NewDirTarget(filepath.Join(t.TempDir(), "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitFor polls cond until it holds or a generous deadline passes (the deadline only bounds a
// broken test; nothing asserts on how long it took).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
