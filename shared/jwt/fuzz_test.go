package jwt_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
)

// fuzzSeeds are valid tokens of both algorithms and the attacks of jwt_test.go.
func fuzzSeeds() []string {
	exp := strconv.FormatInt(testNow+600, 10)
	seeds := []string{"", ".", "..", "a.b.c", "e30.e30.AA"}
	for _, alg := range bothAlgs {
		good := mint(alg, stdClaims())
		parts := strings.Split(good, ".")
		seeds = append(seeds,
			good,
			mint(alg, `{"exp":`+exp+`,"aud":["a","`+testAudience+`"],"sub":"\u00e9\ud83d\ude00"}`),
			signRaw(alg, `{"alg":"none","kid":"ed-1"}`, stdClaims()),
			signRaw(alg, `{"alg":"HS256","kid":"ed-1"}`, stdClaims()),
			signRaw(alg, `{"alg":"`+alg.String()+`","kid":"ed-1","crit":["exp"]}`, stdClaims()),
			signRaw(alg, `{"alg":"`+alg.String()+`","kid":"ed-1","jku":"https://x"}`, stdClaims()),
			signRaw(alg, `{"alg":"`+alg.String()+`","\u006bid":"ec-1","kid":"ed-1"}`, stdClaims()),
			mint(alg, `{"exp":`+exp+`,"exp":`+exp+`}`),
			mint(alg, `{"exp":1.5}`),
			mint(alg, `{"exp":`+exp+`,"x":[[[[[[[[[]]]]]]]]]}`),
			parts[0]+"="+"."+parts[1]+"."+parts[2],
			parts[0]+".\n"+parts[1]+"."+parts[2],
			parts[0]+"."+parts[1]+"."+parts[2][:len(parts[2])-1]+"B",
		)
	}
	return seeds
}

// FuzzParse: Parse never panics, returns the zero Parsed on error, and on
// success what it returns re-encodes to exactly the bytes it came from.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, token []byte) {
		var s jwt.Scratch
		p, err := jwt.Parse(token, &s)
		if err != nil {
			if !reflect.DeepEqual(p, jwt.Parsed{}) {
				t.Fatalf("error %v with non-zero Parsed %+v", err, p)
			}
			return
		}
		last := bytes.LastIndexByte(token, '.')
		if !bytes.Equal(p.SigningInput, token[:last]) {
			t.Fatalf("SigningInput %q is not the received header.payload", p.SigningInput)
		}
		if b64.EncodeToString(p.Signature) != string(token[last+1:]) {
			t.Fatalf("signature does not re-encode to the received bytes")
		}
		if len(token) > 8192 || len(p.Signature) != 64 || (p.Alg != jwt.AlgEdDSA && p.Alg != jwt.AlgES256) {
			t.Fatalf("accepted %q as %+v", token, p)
		}
		var c jwt.Claims
		_ = p.Claims(&c) // must not panic on an unverified payload either
	})
}

// FuzzClaims decodes arbitrary payload bytes and compares every accepted
// payload with encoding/json's reading of it.
func FuzzClaims(f *testing.F) {
	exp := strconv.FormatInt(testNow+600, 10)
	for _, s := range []string{
		stdClaims(),
		`{"exp":` + exp + `}`,
		`{"exp":` + exp + `,"aud":["a","b"],"iss":"\u0069\/x","x":{"y":[1,2.5,-3e7,true,false,null]}}`,
		`{"exp":` + exp + `,"iss":"a","\u0069ss":"b"}`,
		`{"exp":1.5}`, `{"exp":-0}`, `{"exp":9007199254740993}`, `{"exp":"1"}`,
		`{"exp":1,"sub":"\ud800"}`, "{\"exp\":1,\"sub\":\"\xff\"}", `{"exp":1}x`, `foo`,
	} {
		f.Add([]byte(s))
	}
	header := b64.EncodeToString([]byte(profileHeader(jwt.AlgEdDSA)))
	sig := b64.EncodeToString(make([]byte, 64))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var s jwt.Scratch
		p, err := jwt.Parse([]byte(header+"."+b64.EncodeToString(payload)+"."+sig), &s)
		if err != nil {
			return // empty or too large
		}
		var c jwt.Claims
		if err := p.Claims(&c); err != nil {
			if !isZeroClaims(&c) {
				t.Fatalf("error %v with claims left behind", err)
			}
			return
		}
		// Accepted: it is JSON, and encoding/json reads the same claims.
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil || !json.Valid(payload) {
			t.Fatalf("accepted %q; encoding/json: %v", payload, err)
		}
		for name, got := range map[string][]byte{"iss": c.Issuer, "sub": c.Subject, "org": c.Org, "scope": c.Scope, "jti": c.JTI, "key_id": c.KeyID} {
			want, present := m[name].(string)
			if present != (got != nil) || want != string(got) {
				t.Fatalf("%s: got %q, encoding/json %q", name, got, m[name])
			}
		}
		for name, got := range map[string]int64{"exp": c.Expiry, "nbf": c.NotBefore, "iat": c.IssuedAt} {
			if n, ok := m[name].(json.Number); ok {
				if v, err := n.Int64(); err != nil || v != got {
					t.Fatalf("%s: got %d, encoding/json %v", name, got, n)
				}
			} else if name == "exp" || got != 0 {
				t.Fatalf("%s: got %d, encoding/json %v", name, got, m[name])
			}
		}
		var aud []string
		switch a := m["aud"].(type) {
		case string:
			aud = []string{a}
		case []any:
			for _, e := range a {
				aud = append(aud, e.(string))
			}
		}
		if len(aud) != c.NumAudience {
			t.Fatalf("aud: got %d values, encoding/json %v", c.NumAudience, m["aud"])
		}
		for i := range aud {
			if aud[i] != string(c.Audience[i]) {
				t.Fatalf("aud[%d]: got %q, encoding/json %q", i, c.Audience[i], aud[i])
			}
		}
	})
}

// FuzzVerify: whatever Verify accepts carries a real signature of one of the
// test keys over its first two parts, checked here with the standard library
// directly, and is within its validity window.
func FuzzVerify(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	v := stdValidator()
	f.Fuzz(func(t *testing.T, token string) {
		var s jwt.Scratch
		var c jwt.Claims
		err := jwt.Verify([]byte(token), testNow, hostcrypto.Std, testKeys, v, &s, &c)
		if err != nil {
			if !isZeroClaims(&c) {
				t.Fatalf("error %v with claims left behind", err)
			}
			return
		}
		last := strings.LastIndexByte(token, '.')
		sig, derr := b64.DecodeString(token[last+1:])
		if derr != nil || len(sig) != 64 {
			t.Fatalf("accepted a token whose signature part does not decode")
		}
		input := []byte(token[:last])
		digest := sha256.Sum256(input)
		if !ed25519.Verify(edPub, input, sig) &&
			!ecdsa.Verify(&ecPriv.PublicKey, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatalf("accepted %q, not signed by a test key", token)
		}
		if c.Expiry+30 <= testNow || string(c.Issuer) != testIssuer || !c.HasAudience(testAudience) {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}
