package jwt_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

func TestParseAlg(t *testing.T) {
	for _, tc := range []struct {
		name string
		alg  jwt.Alg
		ok   bool
	}{
		{"EdDSA", jwt.AlgEdDSA, true},
		{"ES256", jwt.AlgES256, true},
		{"EDDSA", 0, false},
		{"eddsa", 0, false},
		{"es256", 0, false},
		{"none", 0, false},
		{"HS256", 0, false},
		{"RS256", 0, false},
		{"Ed25519", 0, false},
		{"ES256K", 0, false},
		{"", 0, false},
	} {
		alg, ok := jwt.ParseAlg([]byte(tc.name))
		if alg != tc.alg || ok != tc.ok {
			t.Fatalf("ParseAlg(%q) = %v, %v; want %v, %v", tc.name, alg, ok, tc.alg, tc.ok)
		}
		if ok && alg.String() != tc.name {
			t.Fatalf("%v.String() = %q", alg, alg.String())
		}
	}
	if s := jwt.Alg(9).String(); s != "Alg(9)" {
		t.Fatalf("Alg(9).String() = %q", s)
	}
}

func TestVerifyValidToken(t *testing.T) {
	for _, alg := range bothAlgs {
		t.Run(alg.String(), func(t *testing.T) {
			c, err := verify(t, mint(alg, stdClaims()))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			for _, f := range []struct{ got, want string }{
				{string(c.Issuer), testIssuer},
				{string(c.Subject), "sess_1"},
				{string(c.Org), "org_1"},
				{string(c.Scope), "read write"},
				{string(c.JTI), "jti-1"},
				{string(c.KeyID), "key_0123456789abcdef0123"},
			} {
				if f.got != f.want {
					t.Fatalf("claim = %q, want %q", f.got, f.want)
				}
			}
			if c.NumAudience != 1 || string(c.Audience[0]) != testAudience {
				t.Fatalf("aud = %q (%d)", c.Audience[:c.NumAudience], c.NumAudience)
			}
			if c.Expiry != testNow+600 || c.IssuedAt != testNow-10 || c.NotBefore != testNow-10 ||
				!c.HasIssuedAt || !c.HasNotBefore {
				t.Fatalf("times = %+v", c)
			}
		})
	}
}

// TestTwoStepPath follows what a JS host does: it verifies the signature
// itself (WebCrypto) between FindKey and Claims.
func TestTwoStepPath(t *testing.T) {
	token := []byte(mint(jwt.AlgEdDSA, stdClaims()))
	var s jwt.Scratch
	p, err := jwt.Parse(token, &s)
	if err != nil {
		t.Fatal(err)
	}
	if string(p.SigningInput) != string(token[:strings.LastIndexByte(string(token), '.')]) {
		t.Fatalf("SigningInput is not the received header.payload")
	}
	k, err := p.FindKey(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	if k.Alg != jwt.AlgEdDSA || !ed25519.Verify(k.Public, p.SigningInput, p.Signature) {
		t.Fatalf("host-side verification failed")
	}
	var c jwt.Claims
	if err := p.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if err := stdValidator().Check(&p, &c, testNow); err != nil {
		t.Fatal(err)
	}
	// Claims may be decoded again (the string buffer is rewound, not grown).
	for i := 0; i < 1000; i++ {
		if err := p.Claims(&c); err != nil {
			t.Fatalf("Claims call %d: %v", i, err)
		}
	}
}

// TestSignatureCheckedBeforeClaims: a forged token with a broken payload
// reports the signature, proving claims were not looked at first.
func TestSignatureCheckedBeforeClaims(t *testing.T) {
	good := mint(jwt.AlgEdDSA, stdClaims())
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + b64.EncodeToString([]byte(`{"exp":1.5,"exp":"x"`)) + "." + parts[2]
	if _, err := verify(t, forged); !errors.Is(err, jwt.ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
}

func TestAlgNoneRefused(t *testing.T) {
	for _, name := range []string{"none", "None", "NONE", "nOnE", ""} {
		header := `{"alg":"` + name + `","kid":"ed-1","typ":"JWT"}`
		unsigned := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(stdClaims()))
		if _, err := verify(t, unsigned+"."); !errors.Is(err, jwt.ErrMalformed) {
			t.Fatalf("alg %q, empty signature: got %v, want ErrMalformed", name, err)
		}
		withSig := unsigned + "." + b64.EncodeToString(make([]byte, 64))
		if _, err := verify(t, withSig); !errors.Is(err, jwt.ErrUnsupportedAlg) {
			t.Fatalf("alg %q: got %v, want ErrUnsupportedAlg", name, err)
		}
	}
	// No alg at all.
	tok := signRaw(jwt.AlgEdDSA, `{"kid":"ed-1","typ":"JWT"}`, stdClaims())
	if _, err := verify(t, tok); !errors.Is(err, jwt.ErrUnsupportedAlg) {
		t.Fatalf("missing alg: got %v", err)
	}
}

// TestHMACKeyConfusionRefused: the classic attack signs HS256 with the
// verifier's public key bytes as the HMAC secret.
func TestHMACKeyConfusionRefused(t *testing.T) {
	for _, kc := range []struct {
		kid    string
		secret []byte
	}{{edKID, edPub}, {ecKID, ecPub}} {
		for _, alg := range []string{"HS256", "HS384", "HS512"} {
			header := `{"alg":"` + alg + `","kid":"` + kc.kid + `","typ":"JWT"}`
			input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(stdClaims()))
			mac := hmac.New(sha256.New, kc.secret)
			mac.Write([]byte(input))
			sig := mac.Sum(nil)
			for len(sig) < 64 { // also try a MAC stretched to the size we expect
				tok := input + "." + b64.EncodeToString(sig)
				if _, err := verify(t, tok); !errors.Is(err, jwt.ErrUnsupportedAlg) {
					t.Fatalf("%s with %s public key as secret (%d-byte MAC): got %v", alg, kc.kid, len(sig), err)
				}
				sig = append(sig, sig...)
			}
			var s jwt.Scratch
			if _, err := jwt.Parse([]byte(input+"."+b64.EncodeToString(sig)), &s); !errors.Is(err, jwt.ErrUnsupportedAlg) {
				t.Fatalf("%s 64-byte MAC: got %v", alg, err)
			}
		}
	}
}

// TestAlgorithmFromHeaderIgnored: the key fixes the algorithm; a header naming
// the other one is refused even if the signature matches what it names.
func TestAlgorithmFromHeaderIgnored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header string
		signer jwt.Alg
	}{
		{"EdDSA key, ES256 header", `{"alg":"ES256","kid":"ed-1","typ":"JWT"}`, jwt.AlgES256},
		{"ES256 key, EdDSA header", `{"alg":"EdDSA","kid":"ec-1","typ":"JWT"}`, jwt.AlgEdDSA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := verify(t, signRaw(tc.signer, tc.header, stdClaims())); !errors.Is(err, jwt.ErrAlgMismatch) {
				t.Fatalf("got %v, want ErrAlgMismatch", err)
			}
		})
	}
	// A key with no (or an unknown) algorithm matches no header.
	var s jwt.Scratch
	p, err := jwt.Parse([]byte(mint(jwt.AlgEdDSA, stdClaims())), &s)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []jwt.Alg{0, 3, 255} {
		if err := p.VerifySignature(hostcrypto.Std, anyKey{Alg: a, Public: edPub}); !errors.Is(err, jwt.ErrAlgMismatch) {
			t.Fatalf("key alg %d: got %v", a, err)
		}
	}
	// A key of the right algorithm but the wrong size never verifies.
	if err := p.VerifySignature(hostcrypto.Std, anyKey{Alg: jwt.AlgEdDSA, Public: ecPub}); !errors.Is(err, jwt.ErrBadSignature) {
		t.Fatalf("wrong-size key: got %v", err)
	}
}

func TestSignatureOnChangedPayloadRefused(t *testing.T) {
	for _, alg := range bothAlgs {
		good := mint(alg, stdClaims())
		parts := strings.Split(good, ".")
		other := strings.Replace(stdClaims(), `"scope":"read write"`, `"scope":"read write admin"`, 1)
		changedHeader := strings.Replace(profileHeader(alg), `"typ":"JWT"`, `"typ":"JWT" `, 1)
		sig, _ := b64.DecodeString(parts[2])
		sig[10] ^= 1
		for name, tok := range map[string]string{
			"payload":   parts[0] + "." + b64.EncodeToString([]byte(other)) + "." + parts[2],
			"header":    b64.EncodeToString([]byte(changedHeader)) + "." + parts[1] + "." + parts[2],
			"signature": parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig),
			"swapped":   parts[0] + "." + parts[1] + "." + strings.Split(mint(alg, claimsAt(testNow, testNow, testNow+5)), ".")[2],
		} {
			if _, err := verify(t, tok); !errors.Is(err, jwt.ErrBadSignature) {
				t.Fatalf("%v, changed %s: got %v, want ErrBadSignature", alg, name, err)
			}
		}
	}
}

func TestDuplicateClaimRefused(t *testing.T) {
	exp := strconv.FormatInt(testNow+600, 10)
	for name, tc := range map[string]struct{ header, payload string }{
		"exp twice":           {profileHeader(jwt.AlgEdDSA), `{"exp":` + exp + `,"exp":` + exp + `}`},
		"iss twice":           {profileHeader(jwt.AlgEdDSA), `{"exp":` + exp + `,"iss":"a","iss":"b"}`},
		"iss escaped":         {profileHeader(jwt.AlgEdDSA), `{"exp":` + exp + `,"iss":"a","\u0069ss":"b"}`},
		"iss escaped first":   {profileHeader(jwt.AlgEdDSA), `{"exp":` + exp + `,"\u0069\u0073\u0073":"a","iss":"b"}`},
		"aud escaped slash":   {profileHeader(jwt.AlgEdDSA), `{"exp":` + exp + `,"a/b":1,"a\/b":2}`},
		"unknown twice":       {profileHeader(jwt.AlgEdDSA), `{"exp":` + exp + `,"x":1,"x":1}`},
		"nested twice":        {profileHeader(jwt.AlgEdDSA), `{"exp":` + exp + `,"x":{"y":1,"\u0079":2}}`},
		"header alg twice":    {`{"alg":"EdDSA","kid":"ed-1","alg":"EdDSA"}`, stdClaims()},
		"header alg escaped":  {`{"alg":"EdDSA","kid":"ed-1","\u0061lg":"ES256"}`, stdClaims()},
		"header kid escaped":  {`{"alg":"EdDSA","kid":"ed-1","\u006bid":"ec-1"}`, stdClaims()},
		"header unknown pair": {`{"alg":"EdDSA","kid":"ed-1","x":{"😀":1,"\ud83d\ude00":2}}`, stdClaims()},
	} {
		if _, err := verify(t, signRaw(jwt.AlgEdDSA, tc.header, tc.payload)); !errors.Is(err, jwt.ErrDuplicateName) {
			t.Fatalf("%s: got %v, want ErrDuplicateName", name, err)
		}
	}
	// Same names in different objects are not duplicates.
	p := strings.Replace(stdClaims(), `{`, `{"x":{"iss":1,"y":{"iss":2}},`, 1)
	if _, err := verify(t, mint(jwt.AlgEdDSA, p)); err != nil {
		t.Fatalf("distinct objects: %v", err)
	}
}

func TestCritRefused(t *testing.T) {
	for _, crit := range []string{`["exp"]`, `[]`, `null`, `"b64"`, `["b64"]`} {
		header := `{"alg":"EdDSA","kid":"ed-1","typ":"JWT","crit":` + crit + `}`
		if _, err := verify(t, signRaw(jwt.AlgEdDSA, header, stdClaims())); !errors.Is(err, jwt.ErrCritical) {
			t.Fatalf("crit %s: got %v, want ErrCritical", crit, err)
		}
	}
	header := `{"\u0063rit":["exp"],"alg":"EdDSA","kid":"ed-1","typ":"JWT"}`
	if _, err := verify(t, signRaw(jwt.AlgEdDSA, header, stdClaims())); !errors.Is(err, jwt.ErrCritical) {
		t.Fatalf("escaped crit: got %v", err)
	}
}

// TestJKUIgnored: key-locating header parameters pointing at an attacker's key
// change nothing: the token is checked against the configured key only.
func TestJKUIgnored(t *testing.T) {
	attacker := ed25519.NewKeyFromSeed(make([]byte, 32))
	ax := b64.EncodeToString(attacker.Public().(ed25519.PublicKey))
	extra := []string{
		`"jku":"https://attacker.example/jwks.json"`,
		`"x5u":"https://attacker.example/cert.pem"`,
		`"jwk":{"kty":"OKP","crv":"Ed25519","x":"` + ax + `"}`,
		`"x5c":["MIIB"]`,
	}
	for _, e := range extra {
		header := `{"alg":"EdDSA","kid":"ed-1","typ":"JWT",` + e + `}`
		input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(stdClaims()))
		forged := input + "." + b64.EncodeToString(ed25519.Sign(attacker, []byte(input)))
		if _, err := verify(t, forged); !errors.Is(err, jwt.ErrBadSignature) {
			t.Fatalf("%s, attacker-signed: got %v, want ErrBadSignature", e, err)
		}
		// Signed by the real key, the parameter is simply ignored.
		if _, err := verify(t, signRaw(jwt.AlgEdDSA, header, stdClaims())); err != nil {
			t.Fatalf("%s, properly signed: %v", e, err)
		}
	}
}

func TestPaddingRefused(t *testing.T) {
	parts := strings.Split(mint(jwt.AlgEdDSA, stdClaims()), ".")
	for i := range parts {
		for _, pad := range []string{"=", "==", "%3D"} {
			p := append([]string(nil), parts...)
			p[i] += pad
			if _, err := verify(t, strings.Join(p, ".")); !errors.Is(err, jwt.ErrMalformed) {
				t.Fatalf("part %d + %q: got %v, want ErrMalformed", i, pad, err)
			}
		}
	}
	// The standard (non-URL) alphabet is refused too.
	for i := 0; ; i++ {
		tok := mint(jwt.AlgES256, strings.Replace(stdClaims(), "jti-1", "jti-"+strconv.Itoa(i), 1))
		std := strings.NewReplacer("-", "+", "_", "/").Replace(tok)
		if std == tok {
			continue
		}
		if _, err := verify(t, std); !errors.Is(err, jwt.ErrMalformed) {
			t.Fatalf("standard alphabet: got %v", err)
		}
		break
	}
}

func TestWhitespaceRefused(t *testing.T) {
	good := mint(jwt.AlgEdDSA, stdClaims())
	dots := []int{strings.IndexByte(good, '.'), strings.LastIndexByte(good, '.')}
	for _, ws := range []string{" ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\u00a0"} {
		for _, at := range []int{0, 5, dots[0], dots[0] + 1, dots[1], dots[1] + 1, len(good) - 3, len(good)} {
			tok := good[:at] + ws + good[at:]
			if _, err := verify(t, tok); !errors.Is(err, jwt.ErrMalformed) {
				t.Fatalf("%q at %d: got %v, want ErrMalformed", ws, at, err)
			}
		}
	}
}

func TestOversizeRefused(t *testing.T) {
	// Build tokens of exactly MaxTokenBytes and one more byte, padding the
	// payload with an unknown claim (whitespace in the JSON fine-tunes length).
	found := map[int]string{}
	for pad := 5000; pad < 6200 && len(found) < 2; pad++ {
		for sp := 0; sp < 3; sp++ {
			payload := strings.Repeat(" ", sp) + strings.Replace(stdClaims(), "{", `{"pad":"`+strings.Repeat("a", pad)+`",`, 1)
			tok := mint(jwt.AlgEdDSA, payload)
			if n := len(tok) - limits.MaxTokenBytes; n == 0 || n == 1 {
				if _, ok := found[n]; !ok {
					found[n] = tok
				}
			}
		}
	}
	if len(found) != 2 {
		t.Fatalf("could not build tokens at the limit")
	}
	if _, err := verify(t, found[0]); err != nil {
		t.Fatalf("token of exactly %d bytes: %v", limits.MaxTokenBytes, err)
	}
	if _, err := verify(t, found[1]); !errors.Is(err, jwt.ErrTooLarge) {
		t.Fatalf("token of %d bytes: got %v, want ErrTooLarge", limits.MaxTokenBytes+1, err)
	}
	var s jwt.Scratch
	if _, err := jwt.Parse(make([]byte, 1<<20), &s); !errors.Is(err, jwt.ErrTooLarge) {
		t.Fatalf("1 MiB: got %v", err)
	}
	// Limits inside the JSON.
	exp := strconv.FormatInt(testNow+600, 10)
	deep := strings.Repeat(`[`, limits.MaxJSONDepth) + strings.Repeat(`]`, limits.MaxJSONDepth)
	okDepth := strings.Repeat(`[`, limits.MaxJSONDepth-1) + strings.Repeat(`]`, limits.MaxJSONDepth-1)
	var many strings.Builder
	for i := 0; i < limits.MaxJSONMembers; i++ {
		many.WriteString(`"m` + strconv.Itoa(i) + `":0,`)
	}
	for name, tc := range map[string]struct {
		payload string
		want    error
	}{
		"depth at limit":     {`{"exp":` + exp + `,"x":` + okDepth + `}`, nil},
		"depth over limit":   {`{"exp":` + exp + `,"x":` + deep + `}`, jwt.ErrTooLarge},
		"members over limit": {`{` + many.String() + `"exp":` + exp + `}`, jwt.ErrTooLarge},
		"members at limit":   {`{` + many.String()[len(`"m0":0,`):] + `"exp":` + exp + `}`, nil},
		"claim at limit":     {`{"exp":` + exp + `,"sub":"` + strings.Repeat("s", limits.MaxClaimBytes) + `"}`, nil},
		"claim over limit":   {`{"exp":` + exp + `,"sub":"` + strings.Repeat("s", limits.MaxClaimBytes+1) + `"}`, jwt.ErrTooLarge},
		"aud at limit":       {`{"exp":` + exp + `,"aud":[` + strings.Repeat(`"a",`, limits.MaxAudiences-1) + `"a"]}`, nil},
		"aud over limit":     {`{"exp":` + exp + `,"aud":[` + strings.Repeat(`"a",`, limits.MaxAudiences) + `"a"]}`, jwt.ErrTooLarge},
	} {
		_, err := verifyWith(t, mint(jwt.AlgEdDSA, tc.payload), &jwt.Validator{})
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Fatalf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	// kid beyond MaxIDBytes.
	long := `{"alg":"EdDSA","kid":"` + strings.Repeat("k", limits.MaxIDBytes+1) + `"}`
	if _, err := verify(t, signRaw(jwt.AlgEdDSA, long, stdClaims())); !errors.Is(err, jwt.ErrTooLarge) {
		t.Fatalf("long kid: got %v", err)
	}
}

func verifyWith(t testing.TB, token string, v *jwt.Validator) (jwt.Claims, error) {
	t.Helper()
	var s jwt.Scratch
	var c jwt.Claims
	err := jwt.Verify([]byte(token), testNow, hostcrypto.Std, testKeys, v, &s, &c)
	if err != nil && !isZeroClaims(&c) {
		t.Fatalf("Verify returned %v but left claims behind", err)
	}
	return c, err
}

// TestNonCanonicalBase64Refused: flipping the unused low bits of a part's last
// character gives the same bytes under a lax decoder; we refuse it, so every
// token has exactly one encoding.
func TestNonCanonicalBase64Refused(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	tested := 0
	for _, alg := range bothAlgs {
		for _, pad := range []string{"", "a", "ab"} { // vary part lengths mod 3
			good := mint(alg, strings.Replace(stdClaims(), "{", `{"p":"`+pad+`",`, 1))
			parts := strings.Split(good, ".")
			for i, part := range parts {
				if len(part)%4 == 0 {
					continue // no unused bits
				}
				last := strings.IndexByte(alphabet, part[len(part)-1])
				p := append([]string(nil), parts...)
				p[i] = part[:len(part)-1] + string(alphabet[last+1])
				if _, err := verify(t, strings.Join(p, ".")); !errors.Is(err, jwt.ErrMalformed) {
					t.Fatalf("%v part %d %q: got %v, want ErrMalformed", alg, i, p[i][len(p[i])-4:], err)
				}
				tested++
			}
		}
	}
	if tested < 4 {
		t.Fatalf("only %d non-canonical cases built", tested)
	}
	// A length no encoding has (4k+1 characters).
	parts := strings.Split(mint(jwt.AlgEdDSA, stdClaims()), ".")
	for n := 0; n < 4; n++ {
		p := append([]string(nil), parts...)
		p[1] += strings.Repeat("A", n)
		if len(p[1])%4 == 1 {
			if _, err := verify(t, strings.Join(p, ".")); !errors.Is(err, jwt.ErrMalformed) {
				t.Fatalf("4k+1 payload: got %v", err)
			}
		}
	}
}

func TestExpiredRefused(t *testing.T) {
	for _, alg := range bothAlgs {
		for _, tc := range []struct {
			exp  int64
			want error
		}{
			{testNow - 31, jwt.ErrExpired},
			{testNow - 30, jwt.ErrExpired}, // now < exp+leeway is false
			{testNow - 29, nil},
			{testNow - 86400*365, jwt.ErrExpired},
			{-1 << 53, jwt.ErrExpired},
		} {
			_, err := verify(t, mint(alg, claimsAt(testNow-100000, testNow-100000, tc.exp)))
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("%v exp=now%+d: got %v, want %v", alg, tc.exp-testNow, err, tc.want)
			}
		}
	}
	// exp is required.
	_, err := verify(t, mint(jwt.AlgEdDSA, `{"iss":"`+testIssuer+`","aud":"`+testAudience+`"}`))
	var ce *jwt.ClaimError
	if !errors.Is(err, jwt.ErrMissingClaim) || !errors.As(err, &ce) || ce.Claim != "exp" {
		t.Fatalf("missing exp: got %v", err)
	}
}

func TestNotYetValidRefused(t *testing.T) {
	for _, tc := range []struct {
		nbf  int64
		want error
	}{
		{testNow + 31, jwt.ErrNotYetValid},
		{testNow + 30, nil}, // now >= nbf-leeway
		{testNow + 3600, jwt.ErrNotYetValid},
		{1 << 53, jwt.ErrNotYetValid},
	} {
		_, err := verify(t, mint(jwt.AlgEdDSA, claimsAt(testNow, tc.nbf, 1<<53)))
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("nbf=now%+d: got %v, want %v", tc.nbf-testNow, err, tc.want)
		}
	}
}

func TestIssuedInFutureRefused(t *testing.T) {
	for _, tc := range []struct {
		iat  int64
		want error
	}{
		{testNow + 31, jwt.ErrIssuedInFuture},
		{testNow + 30, nil},
	} {
		_, err := verify(t, mint(jwt.AlgEdDSA, claimsAt(tc.iat, testNow, testNow+600)))
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("iat=now%+d: got %v, want %v", tc.iat-testNow, err, tc.want)
		}
	}
}

func TestWrongIssuerRefused(t *testing.T) {
	for _, iss := range []string{"https://evil.example.com", "HTTPS://AUTH.EXAMPLE.COM", testIssuer + "/", testIssuer + `\u0000`, ""} {
		p := strings.Replace(stdClaims(), `"iss":"`+testIssuer+`"`, `"iss":"`+iss+`"`, 1)
		if _, err := verify(t, mint(jwt.AlgEdDSA, p)); !errors.Is(err, jwt.ErrIssuer) {
			t.Fatalf("iss %q: got %v, want ErrIssuer", iss, err)
		}
	}
	p := strings.Replace(stdClaims(), `"iss":"`+testIssuer+`",`, ``, 1)
	if _, err := verify(t, mint(jwt.AlgEdDSA, p)); !errors.Is(err, jwt.ErrIssuer) {
		t.Fatalf("missing iss: got %v", err)
	}
	// An escaped form of the right issuer is the right issuer.
	p = strings.Replace(stdClaims(), `"iss":"https://`, `"iss":"https:\/\/`, 1)
	if _, err := verify(t, mint(jwt.AlgEdDSA, p)); err != nil {
		t.Fatalf("escaped issuer: %v", err)
	}
}

func TestWrongAudienceRefused(t *testing.T) {
	aud := `"aud":"` + testAudience + `"`
	for _, tc := range []struct {
		aud  string
		want error
	}{
		{`"aud":"other.example.com"`, jwt.ErrAudience},
		{`"aud":[]`, jwt.ErrAudience},
		{`"aud":["a","b"]`, jwt.ErrAudience},
		{`"aud":"` + testAudience + `x"`, jwt.ErrAudience},
		{`"aud":["a","` + testAudience + `"]`, nil},
		{`"aud":["` + testAudience + `"]`, nil},
		{`"aud":1`, jwt.ErrMalformed},
		{`"aud":["a",1]`, jwt.ErrMalformed},
		{`"aud":[["` + testAudience + `"]]`, jwt.ErrMalformed},
		{`"aud":null`, jwt.ErrMalformed},
	} {
		p := strings.Replace(stdClaims(), aud, tc.aud, 1)
		_, err := verify(t, mint(jwt.AlgEdDSA, p))
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("%s: got %v, want %v", tc.aud, err, tc.want)
		}
	}
	p := strings.Replace(stdClaims(), aud+",", ``, 1)
	if _, err := verify(t, mint(jwt.AlgEdDSA, p)); !errors.Is(err, jwt.ErrAudience) {
		t.Fatalf("missing aud: got %v", err)
	}
}

func TestFractionalExpRefused(t *testing.T) {
	for _, claim := range []string{"exp", "nbf", "iat"} {
		for _, v := range []string{
			"1800000600.5", "1800000600.0", "1.8000006e9", "18000006E2", "-0", "9007199254740993",
			"-9007199254740993", "99999999999999999999", `"1800000600"`, "true", "null", "[1800000600]", "{}",
		} {
			p := strings.Replace(stdClaims(), "}", `,"`+claim+`":`+v+`}`, 1)
			p = strings.Replace(p, `"`+claim+`":`, `"x`+claim+`":`, 1) // drop the original
			_, err := verify(t, mint(jwt.AlgEdDSA, p))
			var ce *jwt.ClaimError
			if !errors.Is(err, jwt.ErrMalformed) || !errors.As(err, &ce) || ce.Claim != claim {
				t.Fatalf("%s=%s: got %v, want ClaimError{%s, ErrMalformed}", claim, v, err, claim)
			}
		}
	}
	// The edges of the accepted range.
	for _, tc := range []struct{ claim, v string }{
		{"exp", "9007199254740992"}, {"iat", "-9007199254740992"}, {"iat", "0"}, {"nbf", "-9007199254740992"},
	} {
		p := strings.Replace(stdClaims(), `"`+tc.claim+`":`, `"`+tc.claim+`":`+tc.v+`,"x`+tc.claim+`":`, 1)
		if _, err := verify(t, mint(jwt.AlgEdDSA, p)); err != nil {
			t.Fatalf("%s=%s: %v", tc.claim, tc.v, err)
		}
	}
}

func TestUnknownKidRefused(t *testing.T) {
	for _, header := range []string{
		`{"alg":"EdDSA","kid":"ed-2","typ":"JWT"}`,
		`{"alg":"EdDSA","kid":"ED-1","typ":"JWT"}`,
		`{"alg":"EdDSA","kid":"","typ":"JWT"}`,
		`{"alg":"EdDSA","typ":"JWT"}`,
	} {
		if _, err := verify(t, signRaw(jwt.AlgEdDSA, header, stdClaims())); !errors.Is(err, jwt.ErrUnknownKey) {
			t.Fatalf("%s: got %v, want ErrUnknownKey", header, err)
		}
	}
	if _, err := verifyWith(t, "", nil); !errors.Is(err, jwt.ErrMalformed) {
		t.Fatalf("empty token: %v", err)
	}
	var s jwt.Scratch
	p, _ := jwt.Parse([]byte(mint(jwt.AlgEdDSA, stdClaims())), &s)
	if _, err := p.FindKey(nil); !errors.Is(err, jwt.ErrUnknownKey) {
		t.Fatalf("nil KeySet: %v", err)
	}
	// An escaped kid names the same key.
	tok := signRaw(jwt.AlgEdDSA, `{"alg":"EdDSA","kid":"\u0065d-1","typ":"JWT"}`, stdClaims())
	if _, err := verify(t, tok); err != nil {
		t.Fatalf("escaped kid: %v", err)
	}
}

func TestLeewayBounds(t *testing.T) {
	for _, tc := range []struct {
		name          string
		leeway        int64
		iat, nbf, exp int64 // relative to now
		want          error
	}{
		{"zero leeway, exp now", 0, 0, 0, 0, jwt.ErrExpired},
		{"zero leeway, exp now+1", 0, 0, 0, 1, nil},
		{"zero leeway, nbf now+1", 0, 0, 1, 600, jwt.ErrNotYetValid},
		{"zero leeway, iat now+1", 0, 1, 0, 600, jwt.ErrIssuedInFuture},
		{"negative leeway is zero", -100, 0, 0, 1, nil},
		{"negative leeway is zero, exp now", -100, 0, 0, 0, jwt.ErrExpired},
		{"max leeway, exp edge", limits.MaxLeewaySeconds, 0, 0, -limits.MaxLeewaySeconds + 1, nil},
		{"max leeway, exp past", limits.MaxLeewaySeconds, 0, 0, -limits.MaxLeewaySeconds, jwt.ErrExpired},
		{"huge leeway is clamped", 1 << 40, 0, 0, -limits.MaxLeewaySeconds, jwt.ErrExpired},
		{"huge leeway, nbf", 1 << 62, 0, limits.MaxLeewaySeconds + 1, 600, jwt.ErrNotYetValid},
		{"huge leeway, iat", 1 << 62, limits.MaxLeewaySeconds + 1, 0, 600, jwt.ErrIssuedInFuture},
		{"max leeway, nbf edge", limits.MaxLeewaySeconds, 0, limits.MaxLeewaySeconds, 600, nil},
	} {
		v := &jwt.Validator{Issuer: testIssuer, Audience: testAudience, Typ: "JWT", Leeway: tc.leeway}
		_, err := verifyWith(t, mint(jwt.AlgEdDSA, claimsAt(testNow+tc.iat, testNow+tc.nbf, testNow+tc.exp)), v)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Extreme clocks do not overflow into acceptance.
	var s jwt.Scratch
	var c jwt.Claims
	tok := []byte(mint(jwt.AlgEdDSA, claimsAt(testNow, testNow, testNow+600)))
	for _, now := range []int64{1<<63 - 1, -1 << 63} {
		if err := jwt.Verify(tok, now, hostcrypto.Std, testKeys, stdValidator(), &s, &c); err == nil {
			t.Fatalf("now=%d accepted", now)
		}
	}
}

func TestTypChecked(t *testing.T) {
	for _, tc := range []struct {
		header string
		v      jwt.Validator
		want   error
	}{
		{`{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt"}`, jwt.Validator{Typ: "JWT"}, jwt.ErrType},
		{`{"alg":"EdDSA","kid":"ed-1","typ":"jwt"}`, jwt.Validator{Typ: "JWT"}, jwt.ErrType},
		{`{"alg":"EdDSA","kid":"ed-1"}`, jwt.Validator{Typ: "JWT"}, jwt.ErrType},
		{`{"alg":"EdDSA","kid":"ed-1"}`, jwt.Validator{}, nil},
		{`{"alg":"EdDSA","kid":"ed-1","typ":"JWT"}`, jwt.Validator{Typ: "JWT"}, nil},
		{`{"alg":"EdDSA","kid":"ed-1","typ":"\u004aWT"}`, jwt.Validator{Typ: "JWT"}, nil},
		{`{"alg":"EdDSA","kid":"ed-1","typ":1}`, jwt.Validator{}, jwt.ErrMalformed},
	} {
		v := tc.v
		_, err := verifyWith(t, signRaw(jwt.AlgEdDSA, tc.header, stdClaims()), &v)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("%s with %+v: got %v, want %v", tc.header, tc.v, err, tc.want)
		}
	}
}

func TestHeaderRules(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   error
	}{
		{`{"alg":"EdDSA","kid":"ed-1"}`, nil},
		{` {"alg" : "EdDSA" , "kid":"ed-1"}` + "\n", nil},
		{`{"alg":"EdDSA","kid":"ed-1","b64":false}`, nil}, // b64 without crit changes nothing: we sign received bytes
		{`{"alg":"EdDSA","kid":"ed-1"}x`, jwt.ErrMalformed},
		{`{"alg":"EdDSA","kid":"ed-1"}{}`, jwt.ErrMalformed},
		{`{"alg":"EdDSA","kid":"ed-1",}`, jwt.ErrMalformed},
		{`{"alg":"EdDSA" "kid":"ed-1"}`, jwt.ErrMalformed},
		{`{"alg":"EdDSA","kid":"ed-1"`, jwt.ErrMalformed},
		{`["alg","EdDSA"]`, jwt.ErrMalformed},
		{`"EdDSA"`, jwt.ErrMalformed},
		{``, jwt.ErrMalformed},
		{`{'alg':'EdDSA'}`, jwt.ErrMalformed},
		{`{"alg":EdDSA}`, jwt.ErrMalformed},
		{`{"alg":"EdDSA","kid":"ed-1","x":01}`, jwt.ErrMalformed},
		{`{"alg":"EdDSA","kid":"ed-1","x":"\x"}`, jwt.ErrMalformed},
		{`{"alg":"EdDSA","kid":"ed-1","x":"\ud800"}`, jwt.ErrMalformed},
		{"{\"alg\":\"EdDSA\",\"kid\":\"ed-1\",\"x\":\"\xc3\x28\"}", jwt.ErrMalformed},
		{"{\"alg\":\"EdDSA\",\"kid\":\"ed-1\",\"x\":\"\x01\"}", jwt.ErrMalformed},
		{`{"alg":"EdDSA","kid":"ed-1"}` + "\x00", jwt.ErrMalformed},
		{`{"alg":["EdDSA"],"kid":"ed-1"}`, jwt.ErrMalformed},
		{`{"alg":"EdDSA","kid":1}`, jwt.ErrMalformed},
		{`{"alg":"EdDSA","kid":null}`, jwt.ErrMalformed},
		{`{"alg":"EdDSA ","kid":"ed-1"}`, jwt.ErrUnsupportedAlg},
		{`{"alg":"EdDSA\u0000","kid":"ed-1"}`, jwt.ErrUnsupportedAlg},
		{`{"alg":"RS256","kid":"ed-1"}`, jwt.ErrUnsupportedAlg},
		{`{"alg":"ES384","kid":"ed-1"}`, jwt.ErrUnsupportedAlg},
		{`{"alg":"PS256","kid":"ed-1"}`, jwt.ErrUnsupportedAlg},
		{`{"alg":"\u0045dDSA","kid":"ed-1"}`, nil},
	} {
		_, err := verifyWith(t, signRaw(jwt.AlgEdDSA, tc.header, stdClaims()), stdValidatorNoTyp())
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("header %q: got %v, want %v", tc.header, err, tc.want)
		}
	}
	// ES256 signatures of any size but 64 are refused before any crypto.
	parts := strings.Split(mint(jwt.AlgES256, stdClaims()), ".")
	sig, _ := b64.DecodeString(parts[2])
	for _, bad := range [][]byte{sig[:63], append([]byte{0}, sig...), append(sig, 0), make([]byte, 72)} {
		tok := parts[0] + "." + parts[1] + "." + b64.EncodeToString(bad)
		if _, err := verify(t, tok); !errors.Is(err, jwt.ErrBadSignature) {
			t.Fatalf("%d-byte signature: got %v", len(bad), err)
		}
	}
	for _, tok := range []string{"a.b", "a.b.c.d", "..", "a..c", ".b.c", "a.b.", "a.b.c."} {
		if _, err := verifyWith(t, tok, nil); !errors.Is(err, jwt.ErrMalformed) {
			t.Fatalf("%q: got %v, want ErrMalformed", tok, err)
		}
	}
}

func stdValidatorNoTyp() *jwt.Validator {
	v := stdValidator()
	v.Typ = ""
	return v
}

func TestClaimRules(t *testing.T) {
	exp := strconv.FormatInt(testNow+600, 10)
	for _, tc := range []struct {
		payload string
		claim   string // "" when the error is not about one claim
		want    error
	}{
		{`{"exp":` + exp + `}`, "", nil},
		{`{"exp":` + exp + `,"x":[1,2.5e-3,{"a":[true,false,null]},"s\n\u00e9"]}`, "", nil},
		{`{"exp":` + exp + `,"x":-}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":1.}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":.5}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":1e}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":+1}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":tru}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":nul}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":[1,]}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":[1 2]}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":{"a"}}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"x":{1:2}}`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `} `, "", nil},
		{`{"exp":` + exp + `},`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `}/**/`, "", jwt.ErrMalformed},
		{`foo`, "", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"iss":1}`, "iss", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"sub":null}`, "sub", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"org":["o"]}`, "org", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"scope":["read"]}`, "scope", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"jti":{}}`, "jti", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"key_id":true}`, "key_id", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"sub":"\ud83d"}`, "sub", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"sub":"\ude00\ud83d"}`, "sub", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"sub":"\ud83d\u0041"}`, "sub", jwt.ErrMalformed},
		{"{\"exp\":" + exp + ",\"sub\":\"\xed\xa0\x80\"}", "sub", jwt.ErrMalformed}, // UTF-8-encoded surrogate
		{"{\"exp\":" + exp + ",\"sub\":\"\xc0\xaf\"}", "sub", jwt.ErrMalformed},     // overlong
		{"{\"exp\":" + exp + ",\"sub\":\"\xff\"}", "sub", jwt.ErrMalformed},
		{"{\"exp\":" + exp + ",\"sub\":\"a\tb\"}", "sub", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"sub":"\u12"}`, "sub", jwt.ErrMalformed},
		{`{"exp":` + exp + `,"sub":"\u12G4"}`, "sub", jwt.ErrMalformed},
		{`{"iat":1}`, "exp", jwt.ErrMissingClaim},
		{`{"\u0065xp":` + exp + `}`, "", nil},
	} {
		var s jwt.Scratch
		p, err := jwt.Parse([]byte(mint(jwt.AlgEdDSA, tc.payload)), &s)
		if err != nil {
			t.Fatal(err)
		}
		var c jwt.Claims
		err = p.Claims(&c)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("%q: got %v, want %v", tc.payload, err, tc.want)
		}
		if err != nil && !isZeroClaims(&c) {
			t.Fatalf("%q: claims left behind on error", tc.payload)
		}
		var ce *jwt.ClaimError
		if tc.claim != "" && (!errors.As(err, &ce) || ce.Claim != tc.claim) {
			t.Fatalf("%q: got %v, want a ClaimError for %q", tc.payload, err, tc.claim)
		}
	}
}

func TestEscapedClaims(t *testing.T) {
	p := `{"exp":` + strconv.FormatInt(testNow+600, 10) +
		`,"sub":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t","org":"ü","aud":["x","\u0061pi"],"jti":"plain"}`
	var s jwt.Scratch
	pp, err := jwt.Parse([]byte(mint(jwt.AlgEdDSA, p)), &s)
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := pp.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if got, want := string(c.Subject), "café 😀 \"q\" \\ / \b\f\n\r\t"; got != want {
		t.Fatalf("sub = %q, want %q", got, want)
	}
	if string(c.Org) != "ü" || string(c.JTI) != "plain" || c.NumAudience != 2 || string(c.Audience[1]) != "api" {
		t.Fatalf("claims = %+v", c)
	}
}

// TestVerifyAllocs: the EdDSA path allocates nothing; the ES256 path is
// reported (crypto/ecdsa allocates inside the standard Provider).
func TestVerifyAllocs(t *testing.T) {
	for _, alg := range bothAlgs {
		token := []byte(mint(alg, stdClaims()))
		var s jwt.Scratch
		var c jwt.Claims
		v := stdValidator()
		allocs := testing.AllocsPerRun(100, func() {
			if err := jwt.Verify(token, testNow, hostcrypto.Std, testKeys, v, &s, &c); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%v: %.0f allocs per Verify (hostcrypto.Std)", alg, allocs)
		if alg == jwt.AlgEdDSA && allocs != 0 {
			t.Fatalf("EdDSA Verify: %.0f allocs, want 0", allocs)
		}
		// Without the signature check, both paths are allocation-free.
		allocs = testing.AllocsPerRun(100, func() {
			p, err := jwt.Parse(token, &s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.FindKey(testKeys); err != nil {
				t.Fatal(err)
			}
			if err := p.Claims(&c); err != nil {
				t.Fatal(err)
			}
			if err := v.Check(&p, &c, testNow); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%v Parse+FindKey+Claims+Check: %.0f allocs, want 0", alg, allocs)
		}
	}
}

func TestParseErrorReturnsZero(t *testing.T) {
	var s jwt.Scratch
	good := mint(jwt.AlgEdDSA, stdClaims())
	for _, tok := range []string{good + "x", good[:len(good)-1] + "=", "", strings.Replace(good, ".", "..", 1)} {
		p, err := jwt.Parse([]byte(tok), &s)
		if err == nil {
			t.Fatalf("%q accepted", tok)
		}
		if p.Alg != 0 || p.KID != nil || p.Typ != nil || p.SigningInput != nil || p.Signature != nil {
			t.Fatalf("%q: Parse returned %+v with error %v", tok, p, err)
		}
		var c jwt.Claims
		if err := p.Claims(&c); !errors.Is(err, jwt.ErrMalformed) {
			t.Fatalf("Claims on zero Parsed: %v", err)
		}
	}
}
