package jwt_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
)

// Wycheproof vectors are read in place from ../shared/vectors/wycheproof beside
// the repository (never copied into it).
func wycheproofFile(t *testing.T, name string) []byte {
	t.Helper()
	dir := "../../../shared/vectors/wycheproof"
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir = filepath.Join(filepath.Dir(file), dir)
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Wycheproof vectors missing (%v); CI must have %s", err, dir)
		}
		t.Skipf("Wycheproof vectors not found in %s (%v); check out ../shared beside the repository", dir, err)
	}
	return data
}

type wycheproofSigFile struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		PublicKey struct {
			PK           string `json:"pk"`
			Uncompressed string `json:"uncompressed"`
		} `json:"publicKey"`
		Tests []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Msg     string   `json:"msg"`
			Sig     string   `json:"sig"`
			Result  string   `json:"result"`
			Flags   []string `json:"flags"`
		} `json:"tests"`
	} `json:"testGroups"`
}

func runWycheproofSig(t *testing.T, file string, verify func(pub, msg, sig []byte) bool, pubOf func(pk, unc string) string) {
	var f wycheproofSigFile
	if err := json.Unmarshal(wycheproofFile(t, file), &f); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	n := 0
	for _, g := range f.TestGroups {
		pub, err := hex.DecodeString(pubOf(g.PublicKey.PK, g.PublicKey.Uncompressed))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range g.Tests {
			n++
			msg, err1 := hex.DecodeString(tc.Msg)
			sig, err2 := hex.DecodeString(tc.Sig)
			if err1 != nil || err2 != nil {
				t.Fatalf("tcId %d: bad hex", tc.TcID)
			}
			ok := verify(pub, msg, sig)
			switch tc.Result {
			case "valid":
				if !ok {
					t.Fatalf("tcId %d (%s): valid signature refused", tc.TcID, tc.Comment)
				}
			case "invalid":
				if ok {
					t.Fatalf("tcId %d (%s %v): invalid signature accepted", tc.TcID, tc.Comment, tc.Flags)
				}
			case "acceptable":
				t.Logf("tcId %d (%s %v): acceptable, accepted=%v", tc.TcID, tc.Comment, tc.Flags, ok)
			default:
				t.Fatalf("tcId %d: unknown result %q", tc.TcID, tc.Result)
			}
			key := tc.Result
			if tc.Result == "acceptable" {
				key += map[bool]string{true: "/accepted", false: "/refused"}[ok]
			}
			counts[key]++
		}
	}
	if n != f.NumberOfTests || n == 0 {
		t.Fatalf("ran %d of %d tests", n, f.NumberOfTests)
	}
	t.Logf("%s: %d cases: %v", file, n, counts)
}

func TestWycheproofEd25519(t *testing.T) {
	runWycheproofSig(t, "ed25519_test.json", hostcrypto.Std.VerifyEd25519,
		func(pk, _ string) string { return pk })
}

func TestWycheproofES256(t *testing.T) {
	runWycheproofSig(t, "ecdsa_secp256r1_sha256_p1363_test.json", hostcrypto.Std.VerifyES256,
		func(_, unc string) string { return unc })
}

type jwk struct {
	Kty    string   `json:"kty"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
}

// latchkeyKey turns a JWK into the Key a snapshot would carry, if latchkey
// can use it at all: Ed25519 or P-256, meant for signatures (no "use" other
// than "sig", no "key_ops" without "verify"). A key marked for encryption is
// never published as a token-signing key, so such groups get an empty set.
func latchkeyKey(k *jwk) (key jwt.Key, supportedType, forSigning bool) {
	dec := base64.RawURLEncoding.Strict()
	switch {
	case k.Kty == "OKP" && k.Crv == "Ed25519":
		x, err := dec.DecodeString(k.X)
		if err != nil || len(x) != 32 {
			return jwt.Key{}, false, false
		}
		key = jwt.Key{Alg: jwt.AlgEdDSA, Public: x}
	case k.Kty == "EC" && k.Crv == "P-256":
		x, err1 := dec.DecodeString(k.X)
		y, err2 := dec.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return jwt.Key{}, false, false
		}
		key = jwt.Key{Alg: jwt.AlgES256, Public: append(append([]byte{4}, x...), y...)}
	default:
		return jwt.Key{}, false, false
	}
	forSigning = (k.Use == "" || k.Use == "sig") && (k.KeyOps == nil || slices.Contains(k.KeyOps, "verify"))
	return key, true, forSigning
}

// TestWycheproofJWS runs every compact-JWS group whose key latchkey supports
// (Ed25519, P-256) through Parse+VerifySignature with a KeySet that returns
// the group's key for any kid, and checks that nothing in any other group
// (HMAC, RSA, other curves, JSON serialisation) is ever accepted.
func TestWycheproofJWS(t *testing.T) {
	var f struct {
		NumberOfTests int `json:"numberOfTests"`
		TestGroups    []struct {
			Comment string `json:"comment"`
			Public  *jwk   `json:"public"`
			Tests   []struct {
				TcID    int    `json:"tcId"`
				Comment string `json:"comment"`
				JWS     string `json:"jws"`
				Result  string `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	if err := json.Unmarshal(wycheproofFile(t, "json_web_signature_test.json"), &f); err != nil {
		t.Fatal(err)
	}
	// Every key latchkey could hold, used against the unsupported groups.
	allKeys := []jwt.KeySet{anyKey{Alg: jwt.AlgEdDSA, Public: edPub}, anyKey{Alg: jwt.AlgES256, Public: ecPub}}
	for _, g := range f.TestGroups {
		if g.Public != nil {
			if k, supported, _ := latchkeyKey(g.Public); supported {
				allKeys = append(allKeys, anyKey(k))
			}
		}
	}
	var s jwt.Scratch
	var supValid, supInvalid, unsup, notForSigning int
	reasons := map[string]int{}
	for _, g := range f.TestGroups {
		var key jwt.Key
		supported, forSigning := false, false
		if g.Public != nil {
			key, supported, forSigning = latchkeyKey(g.Public)
		}
		for _, tc := range g.Tests {
			if supported {
				var keys jwt.KeySet = keySet{}
				if forSigning {
					keys = anyKey(key)
				} else {
					notForSigning++
				}
				var err error
				p, perr := jwt.Parse([]byte(tc.JWS), &s)
				if err = perr; err == nil {
					err = p.VerifySignature(hostcrypto.Std, keys)
				}
				switch tc.Result {
				case "valid":
					if err != nil {
						t.Fatalf("group %s tcId %d (%s): valid JWS refused: %v", g.Comment, tc.TcID, tc.Comment, err)
					}
					supValid++
				case "invalid":
					if err == nil {
						t.Fatalf("group %s tcId %d (%s): invalid JWS accepted", g.Comment, tc.TcID, tc.Comment)
					}
					supInvalid++
				default:
					t.Fatalf("tcId %d: result %q", tc.TcID, tc.Result)
				}
				continue
			}
			// Unsupported: refused whatever it says, with every key we have.
			unsup++
			p, err := jwt.Parse([]byte(tc.JWS), &s)
			if err != nil {
				reasons[errName(err)]++
				continue
			}
			for _, keys := range allKeys {
				if err := p.VerifySignature(hostcrypto.Std, keys); err == nil {
					t.Fatalf("group %s tcId %d (%s, %s): unsupported JWS accepted", g.Comment, tc.TcID, tc.Comment, tc.Result)
				}
			}
			reasons["parsed, signature refused"]++
		}
	}
	total := supValid + supInvalid + unsup
	if total != f.NumberOfTests {
		t.Fatalf("ran %d of %d", total, f.NumberOfTests)
	}
	if supValid == 0 || supInvalid == 0 {
		t.Fatalf("no supported cases ran")
	}
	t.Logf("json_web_signature_test.json: %d cases; supported (P-256/Ed25519 keys): %d valid accepted, %d invalid refused (%d of them with an encryption-only key); unsupported: %d refused %v",
		total, supValid, supInvalid, notForSigning, unsup, reasons)
}

func errName(err error) string {
	for _, e := range []error{jwt.ErrMalformed, jwt.ErrUnsupportedAlg, jwt.ErrTooLarge, jwt.ErrCritical, jwt.ErrDuplicateName, jwt.ErrBadSignature} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}
