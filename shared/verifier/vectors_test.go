package verifier_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// The shared test vectors live in shared/testdata/vectors. `make vectors` regenerates them
// (go test ./shared/verifier -run TestGenerateVectors -args -update); every other run checks
// that the committed files still give their expected outcome, in Go here and in the Wasm and
// JS hosts' own tests.
var update = flag.Bool("update", false, "rewrite shared/testdata/vectors")

const vectorDir = "../testdata/vectors"

// JWTVectors is the file format of jwt.json.
type JWTVectors struct {
	Description string         `json:"description"`
	Now         int64          `json:"now"`
	Validator   JWTValidator   `json:"validator"`
	Keys        []JWTVectorKey `json:"keys"`
	Cases       []JWTCase      `json:"cases"`
}

type JWTValidator struct {
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	Typ      string `json:"typ"`
	Leeway   int64  `json:"leeway"`
}

type JWTVectorKey struct {
	KID    string `json:"kid"`
	Alg    string `json:"alg"`
	Public string `json:"public"` // hex: 32-byte Ed25519 or 65-byte uncompressed P-256
}

type JWTCase struct {
	Name   string `json:"name"`
	Token  string `json:"token"`
	Expect string `json:"expect"`
}

// DecisionVectors is the file format of decisions-<profile>.json: a signed snapshot and
// requests with the decision every host must reach.
type DecisionVectors struct {
	Description string            `json:"description"`
	Profile     string            `json:"profile"`
	Now         int64             `json:"now"`
	TrustedKey  TrustedKey        `json:"trusted_key"`
	Manifest    string            `json:"manifest"` // base64
	Objects     []string          `json:"objects"`  // base64, in manifest order
	Keys        map[string]string `json:"keys"`
	Tokens      map[string]string `json:"tokens"`
	Cases       []DecisionCase    `json:"cases"`
}

type TrustedKey struct {
	Alg    string `json:"alg"`
	Public string `json:"public"`
}

type DecisionCase struct {
	Name    string          `json:"name"`
	Request DecisionRequest `json:"request"`
	Expect  DecisionExpect  `json:"expect"`
}

type DecisionRequest struct {
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	Headers    [][2]string `json:"headers,omitempty"`
	QueryToken string      `json:"query_token,omitempty"`
}

type DecisionExpect struct {
	Status   int               `json:"status"`
	Reason   string            `json:"reason,omitempty"`
	Route    string            `json:"route,omitempty"`
	Body     string            `json:"body,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	Identity map[string]string `json:"identity,omitempty"`
}

// jwtExpectations names each jwt error as the vectors spell it, most specific first.
var jwtExpectations = []struct {
	name string
	err  error
}{
	{"too_large", jwt.ErrTooLarge},
	{"unsupported_alg", jwt.ErrUnsupportedAlg},
	{"critical", jwt.ErrCritical},
	{"duplicate_name", jwt.ErrDuplicateName},
	{"unknown_key", jwt.ErrUnknownKey},
	{"alg_mismatch", jwt.ErrAlgMismatch},
	{"bad_signature", jwt.ErrBadSignature},
	{"expired", jwt.ErrExpired},
	{"not_yet_valid", jwt.ErrNotYetValid},
	{"issued_in_future", jwt.ErrIssuedInFuture},
	{"issuer", jwt.ErrIssuer},
	{"audience", jwt.ErrAudience},
	{"type", jwt.ErrType},
	{"missing_claim", jwt.ErrMissingClaim},
	{"malformed", jwt.ErrMalformed},
}

func jwtOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	for _, e := range jwtExpectations {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return "error: " + err.Error()
}

type vectorKeys struct {
	lookup map[string]jwt.Key
}

func (k *vectorKeys) LookupKey(kid []byte) (jwt.Key, bool) {
	v, ok := k.lookup[string(kid)]
	return v, ok
}

func jwtKeys(t testing.TB, f *JWTVectors) *vectorKeys {
	k := &vectorKeys{lookup: map[string]jwt.Key{}}
	for _, vk := range f.Keys {
		pub, err := hex.DecodeString(vk.Public)
		if err != nil {
			t.Fatal(err)
		}
		alg, ok := jwt.ParseAlg([]byte(vk.Alg))
		if !ok {
			t.Fatalf("vector key %s: alg %s", vk.KID, vk.Alg)
		}
		k.lookup[vk.KID] = jwt.Key{KID: []byte(vk.KID), Alg: alg, Public: pub}
	}
	return k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rawToken assembles a token from literal header and claims JSON and signs it.
func rawToken(header, claims string, sign func(input []byte) []byte) string {
	input := b64([]byte(header)) + "." + b64([]byte(claims))
	return input + "." + b64(sign([]byte(input)))
}

// generateJWTVectors builds the JWT cases. Each expectation follows from how the case is made
// (an expired case is made expired), not from running the verifier.
func generateJWTVectors(t testing.TB) *JWTVectors {
	rng := rand.NewChaCha8([32]byte{'j', 'w', 't'})
	seed := make([]byte, 32)
	_, _ = rng.Read(seed)
	ed := ed25519.NewKeyFromSeed(seed)
	es, err := ecdsa.GenerateKey(elliptic.P256(), rng)
	if err != nil {
		t.Fatal(err)
	}
	esPub, _ := es.PublicKey.Bytes()
	const now = 1790000000
	f := &JWTVectors{
		Description: "latchkey client-token vectors: verify token with keys and validator at now; expect is ok or the error name (see shared/SPEC.md, JWT profile).",
		Now:         now,
		Validator:   JWTValidator{Issuer: "https://auth.example.test", Audience: "api.example.test", Typ: "JWT", Leeway: 30},
		Keys: []JWTVectorKey{
			{KID: "ed-1", Alg: "EdDSA", Public: hex.EncodeToString(ed.Public().(ed25519.PublicKey))},
			{KID: "es-1", Alg: "ES256", Public: hex.EncodeToString(esPub)},
		},
	}
	edSign := func(in []byte) []byte { return ed25519.Sign(ed, in) }
	esSign := func(in []byte) []byte {
		d := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rng, es, d[:])
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
	edHdr := `{"alg":"EdDSA","kid":"ed-1","typ":"JWT"}`
	esHdr := `{"alg":"ES256","kid":"es-1","typ":"JWT"}`
	claims := func(extra string) string {
		c := `{"iss":"https://auth.example.test","aud":"api.example.test","sub":"sess_1","org":"org_1","scope":"read steer","iat":1789999990,"nbf":1789999990,"exp":1790000600,"jti":"tok_1","key_id":"key_00112233445566778899"`
		if extra != "" {
			c += "," + extra
		}
		return c + "}"
	}
	withClaims := func(c string) string { return rawToken(edHdr, c, edSign) }
	good := withClaims(claims(""))
	parts := strings.Split(good, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	flipped := append([]byte(nil), sig...)
	flipped[10] ^= 1
	changedPayload := parts[0] + "." + b64([]byte(strings.Replace(claims(""), "read steer", "read steer admin", 1))) + "." + parts[2]
	big := withClaims(claims(`"pad":"` + strings.Repeat("x", 9000) + `"`))

	add := func(name, token, expect string) {
		f.Cases = append(f.Cases, JWTCase{Name: name, Token: token, Expect: expect})
	}
	add("eddsa valid", good, "ok")
	add("es256 valid", rawToken(esHdr, claims(""), esSign), "ok")
	add("aud as array", withClaims(strings.Replace(claims(""), `"aud":"api.example.test"`, `"aud":["other","api.example.test"]`, 1)), "ok")
	add("within leeway after exp", withClaims(strings.Replace(claims(""), `"exp":1790000600`, `"exp":1789999980`, 1)), "ok")
	add("signature bit flipped", parts[0]+"."+parts[1]+"."+b64(flipped), "bad_signature")
	add("known signature on changed payload", changedPayload, "bad_signature")
	add("alg none", rawToken(`{"alg":"none","kid":"ed-1","typ":"JWT"}`, claims(""), edSign), "unsupported_alg")
	add("hs256 with public key as secret", rawToken(`{"alg":"HS256","kid":"ed-1","typ":"JWT"}`, claims(""), func(in []byte) []byte {
		h := sha256.Sum256(append(ed.Public().(ed25519.PublicKey), in...))
		return h[:]
	}), "unsupported_alg")
	add("header says ES256, key is EdDSA", rawToken(`{"alg":"ES256","kid":"ed-1","typ":"JWT"}`, claims(""), edSign), "alg_mismatch")
	add("unknown kid", rawToken(`{"alg":"EdDSA","kid":"ed-9","typ":"JWT"}`, claims(""), edSign), "unknown_key")
	add("crit header", rawToken(`{"alg":"EdDSA","kid":"ed-1","typ":"JWT","crit":["exp"]}`, claims(""), edSign), "critical")
	add("jku header ignored, key from set", rawToken(`{"alg":"EdDSA","kid":"ed-1","typ":"JWT","jku":"https://evil.test/jwks"}`, claims(""), edSign), "ok")
	add("duplicate claim", withClaims(claims(`"exp":1890000000`)), "duplicate_name")
	add("duplicate claim, escaped name", withClaims(claims(`"\u0065xp":1890000000`)), "duplicate_name")
	add("duplicate header member", rawToken(`{"alg":"EdDSA","kid":"ed-1","typ":"JWT","kid":"ed-1"}`, claims(""), edSign), "duplicate_name")
	add("expired", withClaims(strings.Replace(claims(""), `"exp":1790000600`, `"exp":1789999900`, 1)), "expired")
	add("not yet valid", withClaims(strings.Replace(claims(""), `"nbf":1789999990`, `"nbf":1790000100`, 1)), "not_yet_valid")
	add("issued in the future", withClaims(strings.Replace(claims(""), `"iat":1789999990`, `"iat":1790000100`, 1)), "issued_in_future")
	add("wrong issuer", withClaims(strings.Replace(claims(""), `auth.example.test`, `evil.example.test`, 1)), "issuer")
	add("wrong audience", withClaims(strings.Replace(claims(""), `"aud":"api.example.test"`, `"aud":"other.example.test"`, 1)), "audience")
	add("wrong typ", rawToken(`{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt"}`, claims(""), edSign), "type")
	add("missing exp", withClaims(strings.Replace(claims(""), `,"exp":1790000600`, ``, 1)), "missing_claim")
	add("fractional exp", withClaims(strings.Replace(claims(""), `"exp":1790000600`, `"exp":1790000600.5`, 1)), "malformed")
	add("padding", good+"=", "malformed")
	add("whitespace", " "+good, "malformed")
	add("two parts", parts[0]+"."+parts[1], "malformed")
	add("four parts", good+"."+parts[2], "malformed")
	add("claims not an object", withClaims(`["sess_1"]`), "malformed")
	add("trailing garbage after claims", withClaims(claims("")+"x"), "malformed")
	add("oversize", big, "too_large")
	return f
}

func checkJWTVectors(t *testing.T, f *JWTVectors) {
	keys := jwtKeys(t, f)
	v := &jwt.Validator{Issuer: f.Validator.Issuer, Audience: f.Validator.Audience, Typ: f.Validator.Typ, Leeway: f.Validator.Leeway}
	var s jwt.Scratch
	var c jwt.Claims
	for _, tc := range f.Cases {
		err := jwt.Verify([]byte(tc.Token), f.Now, hostcrypto.Std, keys, v, &s, &c)
		if got := jwtOutcome(err); got != tc.Expect {
			t.Errorf("jwt vector %q: got %s, want %s", tc.Name, got, tc.Expect)
		}
	}
}

func generateDecisionVectors(t testing.TB, name string) *DecisionVectors {
	b, err := profiles.Build(name, 1)
	if err != nil {
		t.Fatal(err)
	}
	st := loadBuilt(t, b)
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(st)
	f := &DecisionVectors{
		Description: "latchkey decision vectors for profile " + name + ": open the snapshot (manifest signed by trusted_key, objects in manifest order), decide each request at now; every host must reach expect.",
		Profile:     name, Now: b.Now,
		TrustedKey: TrustedKey{Alg: "EdDSA", Public: hex.EncodeToString(b.Trusted.Public)},
		Manifest:   base64.StdEncoding.EncodeToString(b.Manifest),
		Keys:       b.Keys, Tokens: b.Tokens,
	}
	for _, o := range b.Objects {
		f.Objects = append(f.Objects, base64.StdEncoding.EncodeToString(o))
	}
	for i := range b.Cases {
		c := &b.Cases[i]
		d := e.Decide(request(c, b.Now))
		o := outcome(st, d)
		// The recorded expectation is the case file's (hand-written from the platform's
		// contract); the decision only fills in what the case file leaves unchecked, and only
		// after the case passed.
		if err := c.Check(o); err != nil {
			t.Fatalf("%s/%s: %v", name, c.Name, err)
		}
		dc := DecisionCase{Name: c.Name, Request: DecisionRequest{Method: c.Method, Path: c.Path, Headers: c.Headers, QueryToken: c.QueryToken}}
		dc.Expect = DecisionExpect{Status: o.Status, Reason: o.Reason, Route: o.Route, Body: string(o.Body), Headers: o.Headers}
		if d.Allow {
			dc.Expect.Identity = o.Identity
		}
		f.Cases = append(f.Cases, dc)
	}
	return f
}

func writeJSON(t testing.TB, name string, v any) {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vectorDir, name), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t testing.TB, name string, v any) {
	data, err := os.ReadFile(filepath.Join(vectorDir, name))
	if err != nil {
		t.Fatalf("%v (run `make vectors` to generate)", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestGenerateVectors regenerates the vectors with -update; without it, it checks that freshly
// generated cases pass, so a generator change cannot silently produce wrong vectors.
func TestGenerateVectors(t *testing.T) {
	// ES256 signatures draw randomness; a fixed source keeps regenerated files byte-identical.
	cryptotest.SetGlobalRandom(t, 20261122)
	jv := generateJWTVectors(t)
	checkJWTVectors(t, jv)
	if *update {
		writeJSON(t, "jwt.json", jv)
	}
	for _, name := range profiles.Names() {
		dv := generateDecisionVectors(t, name)
		if *update {
			writeJSON(t, "decisions-"+name+".json", dv)
		}
	}
}

// TestJWTVectors checks the committed jwt.json.
func TestJWTVectors(t *testing.T) {
	var f JWTVectors
	readJSON(t, "jwt.json", &f)
	if len(f.Cases) < 25 {
		t.Fatalf("jwt.json has only %d cases", len(f.Cases))
	}
	checkJWTVectors(t, &f)
}

// TestDecisionVectors decides the committed decisions-*.json from their own snapshot bytes, as
// a Wasm or JS host does: a change to the snapshot format or the decision that would break the
// other hosts fails here first.
func TestDecisionVectors(t *testing.T) {
	for _, name := range profiles.Names() {
		var f DecisionVectors
		readJSON(t, "decisions-"+name+".json", &f)
		b := &profiles.Built{Profile: f.Profile, Now: f.Now}
		var err error
		if b.Manifest, err = base64.StdEncoding.DecodeString(f.Manifest); err != nil {
			t.Fatal(err)
		}
		for _, o := range f.Objects {
			data, err := base64.StdEncoding.DecodeString(o)
			if err != nil {
				t.Fatal(err)
			}
			b.Objects = append(b.Objects, data)
		}
		pub, _ := hex.DecodeString(f.TrustedKey.Public)
		b.Trusted.Alg, b.Trusted.Public = uint8(jwt.AlgEdDSA), pub
		st := loadBuilt(t, b)
		e := verifier.NewEngine(verifier.Options{})
		e.SetState(st)
		for _, c := range f.Cases {
			r := &profiles.Resolved{Name: c.Name, Method: c.Request.Method, Path: c.Request.Path, Headers: c.Request.Headers, QueryToken: c.Request.QueryToken}
			d := e.Decide(request(r, f.Now))
			o := outcome(st, d)
			if o.Status != c.Expect.Status || o.Reason != c.Expect.Reason || string(o.Body) != c.Expect.Body || o.Route != c.Expect.Route {
				t.Errorf("%s/%s: got %d %s %q %s, want %d %s %q %s", name, c.Name, o.Status, o.Reason, o.Route, o.Body, c.Expect.Status, c.Expect.Reason, c.Expect.Route, c.Expect.Body)
			}
			for k, v := range c.Expect.Identity {
				if o.Identity[k] != v {
					t.Errorf("%s/%s: identity %s = %q, want %q", name, c.Name, k, o.Identity[k], v)
				}
			}
		}
	}
}
