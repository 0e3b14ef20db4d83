package profiles

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/jwt"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// Built is a profile's fixture turned into what a host consumes: a signed snapshot, the
// plaintext keys and tokens, and every case with its placeholders filled in. It is
// deterministic for a given seed, so every host (Go, Wasm, JS) can be handed the same one.
type Built struct {
	Profile string
	// Now is the clock of every case, in Unix seconds.
	Now int64
	// Manifest is the signed manifest; Objects the snapshot objects in manifest order.
	Manifest []byte
	Objects  [][]byte
	// Trusted is the manifest signing key a host pins.
	Trusted snapshot.TrustedKey
	Keys    map[string]string
	Tokens  map[string]string
	Cases   []Resolved
	// Contents is what the snapshot was built from; change it and call Publish to get the
	// next version signed by the same key.
	Contents *snapshot.Contents
	// TokenKey signs client tokens under TokenKID.
	TokenKey ed25519.PrivateKey

	manifestKey ed25519.PrivateKey
}

// TokenKID is the kid of every fixture's token signing key.
const TokenKID = fixtureKID

// Publish builds and signs b.Contents as the snapshot b describes (bump Contents.Version first
// to publish a newer one).
func (b *Built) Publish() error {
	objs, err := snapshot.Build(b.Contents, snapshot.BuildOptions{})
	if err != nil {
		return errors.New(b.Profile + ": build snapshot: " + err.Error())
	}
	c := b.Contents
	m := &snapshot.Manifest{Realm: c.Realm, Version: c.Version, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
	b.Objects = b.Objects[:0]
	for _, o := range objs {
		m.Objects = append(m.Objects, snapshot.ObjectRef{Name: o.Name, Size: uint64(len(o.Data)), SHA256: sha256.Sum256(o.Data)})
		b.Objects = append(b.Objects, o.Data)
	}
	b.Manifest, err = snapshot.SignManifest(m, snapshot.Ed25519Signer{Key: b.manifestKey, ID: "fixture-manifest"})
	return err
}

// Resolved is a case whose request holds real keys and tokens.
type Resolved struct {
	Name   string
	Method string
	Path   string
	// Headers are sorted by name.
	Headers    [][2]string
	QueryToken string
	Expect     Expect
	// ExpectKeyID is the key id the identity must carry ("" when not checked).
	ExpectKeyID string
}

// Token signing and manifest signing key ids of every fixture.
const (
	fixtureKID      = "fixture-signing-1"
	tokenIssuerPath = "fixture"
)

// Build turns the named profile's fixture into a signed snapshot and resolved cases. seed makes
// key material deterministic.
func Build(name string, seed uint64) (*Built, error) {
	cf, err := Cases(name)
	if err != nil {
		return nil, err
	}
	pol, err := Policy(name)
	if err != nil {
		return nil, err
	}
	comp, err := policy.Compile(pol)
	if err != nil {
		return nil, err
	}
	encoded, err := policy.Encode(pol)
	if err != nil {
		return nil, err
	}
	rng := rand.NewChaCha8(seedBytes(seed))
	fx := cf.Fixture
	b := &Built{Profile: name, Now: fx.Now, Keys: map[string]string{}, Tokens: map[string]string{}}

	tokenKey := ed25519.NewKeyFromSeed(randBytes(rng, 32))
	manifestKey := ed25519.NewKeyFromSeed(randBytes(rng, 32))
	b.Trusted = snapshot.TrustedKey{Alg: uint8(jwt.AlgEdDSA), Public: manifestKey.Public().(ed25519.PublicKey)}

	c := &snapshot.Contents{
		Realm: pol.Realm, Version: 1, IssuedAt: fx.Now, ExpiresAt: fx.Now + 86400, Policy: encoded,
		SigningKeys: []snapshot.SigningKey{{KID: fixtureKID, Alg: uint8(jwt.AlgEdDSA), Public: tokenKey.Public().(ed25519.PublicKey)}},
	}
	for _, o := range fx.Orgs {
		c.Orgs = append(c.Orgs, snapshot.Org{ID: o.ID, State: orgState(o.State)})
	}
	ids := map[string]apikey.ID{}
	orgOf := map[string]string{}
	for _, k := range fx.Keys {
		ti := comp.KeyTypeIndex(k.Type)
		if ti < 0 {
			return nil, errors.New(name + ": key " + k.Name + ": unknown type " + k.Type)
		}
		key, err := comp.KeyType(ti).Spec.Generate(rng)
		if err != nil {
			return nil, errors.New(name + ": key " + k.Name + ": " + err.Error())
		}
		text := key.Reveal()
		b.Keys[k.Name] = text
		h := apikey.Hash(sha256.Sum256([]byte(text)))
		ids[k.Name] = h.ID()
		orgOf[k.Name] = k.Org
		if k.Revoked {
			continue
		}
		mask, err := comp.ScopeMask(k.Scopes)
		if err != nil {
			return nil, errors.New(name + ": key " + k.Name + ": " + err.Error())
		}
		rec := snapshot.KeyRecord{Hash: h, Org: k.Org, Scopes: mask, Agents: k.Agents, Type: uint8(ti)}
		if k.ExpiresIn != 0 {
			rec.Expiry = fx.Now + k.ExpiresIn
		}
		c.Keys = append(c.Keys, rec)
	}

	tp := pol.Tokens
	for _, t := range fx.Tokens {
		iat := fx.Now - t.IssuedAgo
		exp := iat + t.TTL
		jti := "tok_" + strconv.FormatUint(rng.Uint64(), 36)
		claims := map[string]any{
			"iss": tp.Issuer, "aud": tp.Audience, "sub": t.Session, "org": orgOf[t.Key],
			"scope": strings.Join(t.Scopes, " "), "iat": iat, "nbf": iat, "exp": exp, "jti": jti,
			"key_id": ids[t.Key].String(),
		}
		tok, err := SignToken(tokenKey, fixtureKID, claims)
		if err != nil {
			return nil, err
		}
		b.Tokens[t.Name] = tok
		switch t.Revoke {
		case "session":
			c.RevokedSessions = append(c.RevokedSessions, snapshot.Revocation{Hash: sha256.Sum256([]byte(t.Session)), Until: exp})
		case "jti":
			c.RevokedTokens = append(c.RevokedTokens, snapshot.Revocation{Hash: sha256.Sum256([]byte(jti)), Until: exp})
		}
	}

	b.Contents, b.TokenKey, b.manifestKey = c, tokenKey, manifestKey
	if err := b.Publish(); err != nil {
		return nil, err
	}

	lookup := func(kind, n string) (string, bool) {
		var v string
		var ok bool
		if kind == "key" {
			v, ok = b.Keys[n]
		} else {
			v, ok = b.Tokens[n]
		}
		return v, ok
	}
	for _, cs := range cf.Cases {
		r := Resolved{Name: cs.Name, Method: cs.Request.Method, Expect: cs.Expect}
		if r.Path, err = Expand(cs.Request.Path, lookup); err != nil {
			return nil, err
		}
		if r.QueryToken, err = Expand(cs.Request.QueryToken, lookup); err != nil {
			return nil, err
		}
		for hn, hv := range cs.Request.Headers {
			v, err := Expand(hv, lookup)
			if err != nil {
				return nil, err
			}
			r.Headers = append(r.Headers, [2]string{hn, v})
		}
		sort.Slice(r.Headers, func(i, j int) bool { return r.Headers[i][0] < r.Headers[j][0] })
		if id := cs.Expect.Identity; id != nil && id.Key != "" {
			r.ExpectKeyID = ids[id.Key].String()
		}
		b.Cases = append(b.Cases, r)
	}
	return b, nil
}

// SignToken signs claims as a latchkey client token (EdDSA, our header profile). It is the
// fixture's minting; the control plane mints with golang-jwt.
func SignToken(key ed25519.PrivateKey, kid string, claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "EdDSA", "kid": kid, "typ": "JWT"})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig := ed25519.Sign(key, []byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func orgState(s string) uint8 {
	switch s {
	case OrgBudgetExhausted:
		return snapshot.OrgBudgetExhausted
	case OrgSuspended:
		return snapshot.OrgSuspended
	}
	return snapshot.OrgActive
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(s[8:], tokenIssuerPath)
	return s
}

func randBytes(r *rand.ChaCha8, n int) []byte {
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// Outcome is what a host did with one request, in host-neutral form.
type Outcome struct {
	Status int
	// Reason and Route are reported by hosts that expose them ("" when a host cannot).
	Reason string
	Route  string
	// Headers of a denial (names in any case); Body its exact bytes.
	Headers map[string]string
	Body    []byte
	// Identity maps identity fields (org, key_id, key_type, scopes, agent, session,
	// credential) to their values on allow.
	Identity map[string]string
}

// Check compares an outcome with the case's expectation and names every difference.
func (r *Resolved) Check(got *Outcome) error {
	var errs []string
	e := r.Expect
	if got.Status != e.Status {
		errs = append(errs, "status "+strconv.Itoa(got.Status)+", want "+strconv.Itoa(e.Status))
	}
	if e.Reason != "" && got.Reason != "" && got.Reason != e.Reason {
		errs = append(errs, "reason "+got.Reason+", want "+e.Reason)
	}
	if e.Route != "" && got.Route != "" && got.Route != e.Route {
		errs = append(errs, "route "+strconv.Quote(got.Route)+", want "+strconv.Quote(e.Route))
	}
	if e.Body != "" && string(got.Body) != e.Body {
		errs = append(errs, "body "+string(got.Body)+"\n  want "+e.Body)
	}
	for name, want := range e.Headers {
		v, ok := lookupFold(got.Headers, name)
		if !ok || v != want {
			errs = append(errs, "header "+name+": "+strconv.Quote(v)+", want "+strconv.Quote(want))
		}
	}
	if id := e.Identity; id != nil {
		want := map[string]string{"org": id.Org, "key_type": id.KeyType, "key_id": r.ExpectKeyID,
			"scopes": id.Scopes, "agent": id.Agent, "session": id.Session, "credential": id.Credential}
		for f, w := range want {
			if w != "" && got.Identity[f] != w {
				errs = append(errs, "identity "+f+": "+strconv.Quote(got.Identity[f])+", want "+strconv.Quote(w))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

func lookupFold(m map[string]string, name string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}
