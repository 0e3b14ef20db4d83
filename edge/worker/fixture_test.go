package worker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// nodeFixture is what the glue's Node tests and benchmarks read (LATCHKEY_WORKER_FIXTURE):
// the verifier builds, every profile's published snapshot with its cases and the native
// core's decision for each, and variants of the opencomputer snapshot.
type nodeFixture struct {
	Modules    map[string]string          `json:"modules"`
	JWTVectors string                     `json:"jwtVectors"`
	Profiles   map[string]*profileFixture `json:"profiles"`
	// Opencomputer holds what the load and rate-limit tests need beyond the published v1.
	Opencomputer *opencomputerFixture `json:"opencomputer,omitempty"`
	// Bench is opencomputer with its rate class lifted (so benchmarks measure decisions, not
	// 429s) and many fresh tokens.
	Bench *benchFixture `json:"bench,omitempty"`
}

type profileFixture struct {
	Realm      string            `json:"realm"`
	Now        int64             `json:"now"`
	Trusted    string            `json:"trusted"`
	QueryParam string            `json:"queryParam"`
	Strip      []string          `json:"strip"`
	Files      map[string][]byte `json:"files"`
	Keys       map[string]string `json:"keys"`
	Tokens     map[string]string `json:"tokens"`
	Cases      []nodeCase        `json:"cases"`
}

type nodeCase struct {
	Name       string      `json:"name"`
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	Headers    [][2]string `json:"headers"`
	QueryToken *string     `json:"queryToken"`
	Native     nativeJSON  `json:"native"`
}

// nativeJSON is an abi.Decision as the glue's decide reports it.
type nativeJSON struct {
	Allow           bool        `json:"allow"`
	StripQueryToken bool        `json:"stripQueryToken"`
	TokenCached     bool        `json:"tokenCached"`
	Status          int         `json:"status"`
	Reason          string      `json:"reason"`
	Credential      string      `json:"credential"`
	RetryAfter      int64       `json:"retryAfter"`
	Route           string      `json:"route"`
	Org             string      `json:"org"`
	KeyID           string      `json:"keyId"`
	KeyType         string      `json:"keyType"`
	Session         string      `json:"session"`
	Agent           string      `json:"agent"`
	Scopes          string      `json:"scopes"`
	Identity        [][2]string `json:"identity"`
	Headers         [][2]string `json:"headers"`
	Body            []byte      `json:"body"`
}

type opencomputerFixture struct {
	V2          map[string][]byte `json:"v2"`
	BadSigV2    []byte            `json:"badSigV2"`
	FreshTokens []string          `json:"freshTokens"`
	ES256       *es256Fixture     `json:"es256"`
}

type es256Fixture struct {
	Trusted string            `json:"trusted"`
	Files   map[string][]byte `json:"files"`
}

type benchFixture struct {
	Realm       string            `json:"realm"`
	Now         int64             `json:"now"`
	Trusted     string            `json:"trusted"`
	Files       map[string][]byte `json:"files"`
	Key         string            `json:"key"`
	FreshTokens []string          `json:"freshTokens"`
}

func nativeOf(d *abi.Decision) nativeJSON {
	pairs := func(hs []abi.Header) [][2]string {
		out := [][2]string{}
		for _, h := range hs {
			out = append(out, [2]string{string(h.Name), string(h.Value)})
		}
		return out
	}
	return nativeJSON{
		Allow: d.Allow, StripQueryToken: d.StripQueryToken, TokenCached: d.TokenCached, Status: d.Status,
		Reason: verifier.Reason(d.Reason).String(), Credential: verifier.Credential(d.Credential).String(), RetryAfter: d.RetryAfter,
		Route: string(d.Route), Org: string(d.Org), KeyID: string(d.KeyID), KeyType: string(d.KeyType), Session: string(d.Session),
		Agent: string(d.Agent), Scopes: string(d.Scopes), Identity: pairs(d.Identity), Headers: pairs(d.Headers), Body: append([]byte{}, d.Body...),
	}
}

// files is b's snapshot as published ("<realm>/manifest", "<realm>/objects/<name>").
func files(t testing.TB, b *profiles.Built) map[string][]byte {
	t.Helper()
	out, err := (&conformance.Fixture{Built: b, Realm: b.Contents.Realm}).Files()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// freshTokens mints n client tokens for the key named key, bound to session, valid at b.Now.
func freshTokens(t testing.TB, b *profiles.Built, key, session, scope string, n int) []string {
	t.Helper()
	var out []string
	pol, err := profiles.Policy(b.Profile)
	if err != nil {
		t.Fatal(err)
	}
	h := apikey.Hash(sha256.Sum256([]byte(b.Keys[key])))
	for i := 0; i < n; i++ {
		tok, err := profiles.SignToken(b.TokenKey, profiles.TokenKID, map[string]any{
			"iss": pol.Tokens.Issuer, "aud": pol.Tokens.Audience, "sub": session, "org": "org_1", "scope": scope,
			"iat": b.Now, "nbf": b.Now, "exp": b.Now + 600, "jti": "tok_fresh_" + strconv.Itoa(i), "key_id": h.ID().String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tok)
	}
	return out
}

// es256Signer signs manifests with ES256 (R||S), as the control plane's KMS signer does.
type es256Signer struct{ key *ecdsa.PrivateKey }

func (s es256Signer) Alg() uint8    { return snapshot.AlgES256 }
func (s es256Signer) KeyID() string { return "test-es256" }
func (s es256Signer) Sign(message []byte) ([]byte, error) {
	d := sha256.Sum256(message)
	r, ss, err := ecdsa.Sign(rand.Reader, s.key, d[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	ss.FillBytes(out[32:])
	return out, nil
}

// es256Files publishes b's contents under a manifest signed with a fresh P-256 key.
func es256Files(t testing.TB, b *profiles.Built) *es256Fixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := snapshot.Build(b.Contents, snapshot.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := b.Contents
	m := &snapshot.Manifest{Realm: c.Realm, Version: c.Version, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
	out := map[string][]byte{}
	for _, o := range objs {
		m.Objects = append(m.Objects, snapshot.ObjectRef{Name: o.Name, Size: uint64(len(o.Data)), SHA256: sha256.Sum256(o.Data)})
		out[c.Realm+"/objects/"+o.Name] = o.Data
	}
	if out[c.Realm+"/manifest"], err = snapshot.SignManifest(m, es256Signer{key}); err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return &es256Fixture{Trusted: trustedText(snapshot.TrustedKey{Alg: snapshot.AlgES256, Public: pub}), Files: out}
}

// writeFixture writes the fixture for the given builds into dir and returns its path. With
// bench it adds the benchmark snapshot and that many fresh tokens.
func writeFixture(t testing.TB, dir string, wasm map[string]string, bench int) string {
	t.Helper()
	// The modules are copied beside the fixture, so that a kept fixture stays usable after the
	// test's build directory is gone.
	copied := map[string]string{}
	for name, src := range wasm {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		copied[name] = filepath.Join(dir, name+".wasm")
		if err := os.WriteFile(copied[name], data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fx := &nodeFixture{Modules: copied, JWTVectors: filepath.Join(root, "shared", "testdata", "vectors", "jwt.json"), Profiles: map[string]*profileFixture{}}
	for _, name := range profiles.Names() {
		f := conformance.Load(t, name)
		pf := &profileFixture{Realm: f.Realm, Now: f.Now, Trusted: trustedText(f.Trusted), QueryParam: f.Info.QueryParam,
			Strip: f.Info.Strip, Files: files(t, f.Built), Keys: f.Keys, Tokens: f.Tokens}
		for i := range f.Cases {
			c := &f.Cases[i]
			nc := nodeCase{Name: c.Name, Method: c.Method, Path: c.Path, Headers: c.Headers, Native: nativeOf(conformance.Native(f, c))}
			if c.QueryToken != "" {
				q := c.QueryToken
				nc.QueryToken = &q
			}
			pf.Cases = append(pf.Cases, nc)
		}
		fx.Profiles[name] = pf
	}

	// Built afresh: conformance.Load's fixtures are shared with other tests and must not change.
	b, err := profiles.Build("opencomputer", conformance.Seed)
	if err != nil {
		t.Fatal(err)
	}
	oc := &opencomputerFixture{FreshTokens: freshTokens(t, b, "org", "sess_1", "read steer", 25), ES256: es256Files(t, b)}
	b.Contents.Version = 2
	if err := b.Publish(); err != nil {
		t.Fatal(err)
	}
	oc.V2 = files(t, b)
	oc.BadSigV2 = append([]byte{}, b.Manifest...)
	oc.BadSigV2[8] ^= 1 // the first signature byte
	fx.Opencomputer = oc

	if bench > 0 {
		bb, err := profiles.Build("opencomputer", conformance.Seed)
		if err != nil {
			t.Fatal(err)
		}
		pol, err := profiles.Policy("opencomputer")
		if err != nil {
			t.Fatal(err)
		}
		for i := range pol.RateClasses {
			pol.RateClasses[i].PerSecond, pol.RateClasses[i].Burst = 1<<20, 1<<20
		}
		if bb.Contents.Policy, err = policy.Encode(pol); err != nil {
			t.Fatal(err)
		}
		if err := bb.Publish(); err != nil {
			t.Fatal(err)
		}
		fx.Bench = &benchFixture{Realm: bb.Contents.Realm, Now: bb.Now, Trusted: trustedText(bb.Trusted), Files: files(t, bb),
			Key: bb.Keys["org"], FreshTokens: freshTokens(t, bb, "org", "sess_1", "read steer", bench)}
	}

	data, err := json.Marshal(fx)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "fixture.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// joinEnv adds name=value to the environment.
func joinEnv(name, value string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			env = append(env, kv)
		}
	}
	return append(env, name+"="+value)
}
