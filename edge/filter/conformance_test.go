package filter

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// TestConformance runs the cross-host conformance suite (examples/profiles/conformance) on the
// middleware over each decider, the native core and the four Wasm builds on wazero:
// TestConformance/filter-<decider>/<profile>/<case> (filter-native, filter-wazero-accel-tinygo,
// …). Besides what reaches the client and the upstream, each decision is compared with the
// native core's byte for byte (the suite's Response.Decision), and the middleware must leave
// the incoming request unchanged.
func TestConformance(t *testing.T) {
	var hs []conformance.Host
	for _, h := range hosts() {
		hs = append(hs, conformance.Host{Name: "filter-" + h.name, Open: func(t *testing.T, f *conformance.Fixture) func(*testing.T, *conformance.Exchange) *conformance.Response {
			// A fresh decider per case: rate buckets and token caches must not make one
			// case's outcome depend on the cases before it.
			var decision []byte
			rec := &conformance.Recorder{}
			mw := &Filter{decider: loaded(t, h, f.Built, Config{}), now: fixedClock(f.Now), next: rec,
				observe: func(res *Result) { decision = append(decision[:0], res.raw...) }}
			return func(t *testing.T, ex *conformance.Exchange) *conformance.Response {
				r := httptest.NewRequest(ex.Method, ex.Target, nil)
				r.Header = ex.Header.Clone()
				w := httptest.NewRecorder()
				mw.ServeHTTP(w, r)
				for _, name := range f.Info.Strip {
					if r.Header.Get(name) != "forged" {
						t.Fatal("the middleware changed the incoming request")
					}
				}
				return &conformance.Response{Status: w.Code, Header: w.Header(), Body: w.Body.Bytes(), Upstream: rec.Take(), Decision: decision}
			}
		}})
	}
	conformance.Run(t, hs...)
}

// TestTokenCachedOnEveryHost: a repeated client token is answered from the verified-token cache
// (Result.TokenCached) on every host, the first sight and API keys are not, and a disabled
// cache never is; each decision is byte for byte the native core's.
func TestTokenCachedOnEveryHost(t *testing.T) {
	b := profile(t, "agrenting")
	req := func(cred string) *Input {
		return &Input{Now: b.Now * 1e9, Method: "GET", Path: "/api/v1/wallet", Header: http.Header{"Authorization": {"Bearer " + cred}}}
	}
	tok, key := req(b.Tokens["login"]), req(b.Keys["user"])
	for _, h := range hosts() {
		t.Run(h.name, func(t *testing.T) {
			for _, c := range []struct {
				cacheSize int
				in        []*Input
				cached    []bool
			}{
				{0, []*Input{tok, tok, key, tok}, []bool{false, true, false, true}},
				{-1, []*Input{tok, tok}, []bool{false, false}},
			} {
				ref := loaded(t, host{name: "native"}, b, Config{poolSize: 1, tokenCacheSize: c.cacheSize})
				d := loaded(t, h, b, Config{poolSize: 1, tokenCacheSize: c.cacheSize})
				for i, in := range c.in {
					var want, got Result
					if err := ref.Decide(in, &want); err != nil {
						t.Fatal(err)
					}
					if err := d.Decide(in, &got); err != nil {
						t.Fatal(err)
					}
					if !got.Allow || got.TokenCached != c.cached[i] {
						t.Errorf("cache size %d, request %d: %d %s, TokenCached %v, want %v", c.cacheSize, i, got.Status, got.Reason(), got.TokenCached, c.cached[i])
					}
					if !bytes.Equal(got.raw, want.raw) {
						t.Errorf("cache size %d, request %d: decision differs from the native core's", c.cacheSize, i)
					}
				}
			}
		})
	}
}

// decisionVectors is the file format of shared/testdata/vectors/decisions-<profile>.json.
type decisionVectors struct {
	Profile    string `json:"profile"`
	Now        int64  `json:"now"`
	TrustedKey struct {
		Alg    string `json:"alg"`
		Public string `json:"public"`
	} `json:"trusted_key"`
	Manifest string   `json:"manifest"`
	Objects  []string `json:"objects"`
	Cases    []struct {
		Name    string `json:"name"`
		Request struct {
			Method     string      `json:"method"`
			Path       string      `json:"path"`
			Headers    [][2]string `json:"headers"`
			QueryToken string      `json:"query_token"`
		} `json:"request"`
		Expect struct {
			Status   int               `json:"status"`
			Reason   string            `json:"reason"`
			Route    string            `json:"route"`
			Body     string            `json:"body"`
			Headers  map[string]string `json:"headers"`
			Identity map[string]string `json:"identity"`
		} `json:"expect"`
	} `json:"cases"`
}

const vectorDir = "../../shared/testdata/vectors"

// TestDecisionVectors decides the committed decisions-*.json from their own snapshot bytes on
// every host.
func TestDecisionVectors(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(vectorDir, "decisions-*.json"))
	if len(files) < 5 {
		t.Fatalf("found %d decision vector files", len(files))
	}
	for _, h := range hosts() {
		t.Run(h.name, func(t *testing.T) {
			for _, file := range files {
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				var f decisionVectors
				if err := json.Unmarshal(data, &f); err != nil {
					t.Fatal(err)
				}
				b := &profiles.Built{Profile: f.Profile, Now: f.Now}
				b.Manifest = b64(t, f.Manifest)
				for _, o := range f.Objects {
					b.Objects = append(b.Objects, b64(t, o))
				}
				pub, _ := hex.DecodeString(f.TrustedKey.Public)
				b.Trusted = snapshot.TrustedKey{Alg: snapshot.AlgEd25519, Public: pub}
				d := loaded(t, h, b, Config{})
				var res Result
				for _, c := range f.Cases {
					r := &profiles.Resolved{Method: c.Request.Method, Path: c.Request.Path, Headers: c.Request.Headers, QueryToken: c.Request.QueryToken}
					q := ""
					if res.Snapshot != nil {
						q = res.Snapshot.QueryParam
					}
					if err := d.Decide(input(r, f.Now, q), &res); err != nil {
						t.Fatal(err)
					}
					o := outcome(&res)
					e := c.Expect
					if o.Status != e.Status || o.Reason != e.Reason || string(o.Body) != e.Body || o.Route != e.Route {
						t.Errorf("%s/%s: got %d %s %q %s, want %d %s %q %s", f.Profile, c.Name, o.Status, o.Reason, o.Route, o.Body, e.Status, e.Reason, e.Route, e.Body)
					}
					for k, v := range e.Headers {
						if o.Headers[k] != v {
							t.Errorf("%s/%s: header %s = %q, want %q", f.Profile, c.Name, k, o.Headers[k], v)
						}
					}
					for k, v := range e.Identity {
						if o.Identity[k] != v {
							t.Errorf("%s/%s: identity %s = %q, want %q", f.Profile, c.Name, k, o.Identity[k], v)
						}
					}
				}
			}
		})
	}
}

func b64(t testing.TB, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwtVectors is the file format of shared/testdata/vectors/jwt.json.
type jwtVectors struct {
	Now       int64 `json:"now"`
	Validator struct {
		Issuer   string `json:"issuer"`
		Audience string `json:"audience"`
		Typ      string `json:"typ"`
		Leeway   int64  `json:"leeway"`
	} `json:"validator"`
	Keys []struct {
		KID    string `json:"kid"`
		Alg    string `json:"alg"`
		Public string `json:"public"`
	} `json:"keys"`
	Cases []struct {
		Name   string `json:"name"`
		Token  string `json:"token"`
		Expect string `json:"expect"`
	} `json:"cases"`
}

// TestJWTVectors sends every client token of jwt.json through a decision on every host: a
// snapshot publishes the vectors' keys, a policy their issuer, audience and leeway, and the
// minting key the tokens name. "ok" must be allowed, "expired" denied as expired, everything
// else denied as invalid. One decider takes all cases in order, so a token verified (and
// cached) earlier must not let a tampered copy through.
func TestJWTVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(vectorDir, "jwt.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f jwtVectors
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 25 {
		t.Fatalf("jwt.json has only %d cases", len(f.Cases))
	}
	b := jwtSnapshot(t, &f)
	for _, h := range hosts() {
		t.Run(h.name, func(t *testing.T) {
			d := loaded(t, h, b, Config{})
			var res Result
			for _, c := range f.Cases {
				in := &Input{Now: f.Now * 1e9, Method: "GET", Path: "/stream", RawQuery: "token=" + url.QueryEscape(c.Token), Header: http.Header{}}
				if err := d.Decide(in, &res); err != nil {
					t.Fatal(err)
				}
				want := "invalid"
				switch c.Expect {
				case "ok":
					want = "none"
				case "expired":
					want = "expired"
				}
				if got := res.Reason(); got != want || res.Allow != (want == "none") {
					t.Errorf("%s (%s): decision %d %s, want %s", c.Name, c.Expect, res.Status, got, want)
				}
				if res.Allow && (string(res.Session) != "sess_1" || string(res.Org) != "org_1" || string(res.KeyID) != "key_00112233445566778899") {
					t.Errorf("%s: identity %s %s %s", c.Name, res.Org, res.Session, res.KeyID)
				}
			}
		})
	}
}

// jwtSnapshot publishes jwt.json's keys in a snapshot whose policy takes tokens on /stream.
func jwtSnapshot(t testing.TB, f *jwtVectors) *profiles.Built {
	t.Helper()
	p := &policy.Policy{
		Realm:       "jwt-vectors",
		Scopes:      []string{"read", "steer", "admin"},
		Credentials: []policy.Source{{In: "bearer"}, {In: "query", Name: "token"}},
		KeyTypes:    []policy.KeyType{{Name: "org", Prefix: "jv_", DefaultScopes: []string{"*"}}},
		Tokens: &policy.TokenPolicy{Issuer: f.Validator.Issuer, Audience: f.Validator.Audience,
			Scopes: []string{"read", "steer", "admin"}, LeewaySeconds: f.Validator.Leeway},
		Routes: []policy.Route{{Name: "stream", Methods: []string{"GET"}, Path: "/stream", QueryToken: true}},
	}
	if f.Validator.Typ != "JWT" {
		t.Fatalf("validator typ %q: the edge checks JWT", f.Validator.Typ)
	}
	enc, err := policy.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	var minting apikey.Hash
	id, _ := hex.DecodeString("00112233445566778899")
	copy(minting[:], id)
	c := &snapshot.Contents{
		Realm: p.Realm, Version: 1, IssuedAt: f.Now - 10, ExpiresAt: f.Now + 3600, Policy: enc,
		Keys: []snapshot.KeyRecord{{Hash: minting, Org: "org_1", Scopes: policy.AllScopes}},
		Orgs: []snapshot.Org{{ID: "org_1"}},
	}
	for _, k := range f.Keys {
		pub, err := hex.DecodeString(k.Public)
		if err != nil {
			t.Fatal(err)
		}
		alg := snapshot.AlgEd25519
		if k.Alg == "ES256" {
			alg = snapshot.AlgES256
			if _, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub); err != nil {
				t.Fatal(err)
			}
		}
		c.SigningKeys = append(c.SigningKeys, snapshot.SigningKey{KID: k.KID, Alg: alg, Public: pub})
	}
	objs, err := snapshot.Build(c, snapshot.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	m := &snapshot.Manifest{Realm: c.Realm, Version: c.Version, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
	b := &profiles.Built{Profile: "jwt", Now: f.Now, Trusted: snapshot.TrustedKey{Alg: snapshot.AlgEd25519, Public: key.Public().(ed25519.PublicKey)}}
	for _, o := range objs {
		m.Objects = append(m.Objects, snapshot.ObjectRef{Name: o.Name, Size: uint64(len(o.Data)), SHA256: sha256.Sum256(o.Data)})
		b.Objects = append(b.Objects, o.Data)
	}
	if b.Manifest, err = snapshot.SignManifest(m, snapshot.Ed25519Signer{Key: key, ID: "test"}); err != nil {
		t.Fatal(err)
	}
	return b
}
