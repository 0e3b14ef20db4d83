package abi_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

func sampleRequest() *verifier.Request {
	return &verifier.Request{
		Now: 1790000000_123456789, Method: []byte("GET"), Path: []byte("/v3/sessions/sess_1/events"),
		QueryToken: []byte("a.b.c"), HasQueryToken: true,
		Headers: []verifier.Header{
			{Name: []byte("authorization"), Value: []byte("Bearer oc_x")},
			{Name: []byte("x-agent-id"), Value: []byte("")},
		},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	r := sampleRequest()
	b, err := abi.AppendRequest(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != abi.RequestLen(r) {
		t.Fatalf("encoded %d bytes, RequestLen says %d", len(b), abi.RequestLen(r))
	}
	var got verifier.Request
	if err := abi.DecodeRequest(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Now != r.Now || string(got.Method) != "GET" || string(got.Path) != string(r.Path) ||
		!got.HasQueryToken || string(got.QueryToken) != "a.b.c" || len(got.Headers) != 2 ||
		string(got.Headers[0].Value) != "Bearer oc_x" || string(got.Headers[1].Name) != "x-agent-id" {
		t.Fatalf("decoded %+v", got)
	}
	again, _ := abi.AppendRequest(nil, &got)
	if !bytes.Equal(again, b) {
		t.Fatal("re-encoding differs")
	}

	// An empty ?token= is present; no token at all is not, and its bytes are not sent.
	r.QueryToken = nil
	b, _ = abi.AppendRequest(nil, r)
	_ = abi.DecodeRequest(b, &got)
	if !got.HasQueryToken || len(got.QueryToken) != 0 {
		t.Fatal("empty query token lost")
	}
	r.QueryToken, r.HasQueryToken = []byte("ignored"), false
	b, _ = abi.AppendRequest(nil, r)
	_ = abi.DecodeRequest(b, &got)
	if got.HasQueryToken || got.QueryToken != nil {
		t.Fatal("absent query token decoded as present")
	}
	if got.Recheck {
		t.Fatal("a first decision decoded as a recheck")
	}

	// A recheck travels in flag bit 1.
	r.Recheck = true
	b, _ = abi.AppendRequest(nil, r)
	if b[1] != 1<<1 {
		t.Fatalf("flags %08b, want the recheck bit alone", b[1])
	}
	if err := abi.DecodeRequest(b, &got); err != nil || !got.Recheck {
		t.Fatalf("recheck lost: %v %+v", err, got)
	}
	b[1] = 1 << 2
	if err := abi.DecodeRequest(b, &got); !errors.Is(err, abi.ErrMalformed) {
		t.Fatalf("unknown flag bit 2: %v", err)
	}
}

func TestRequestBounds(t *testing.T) {
	r := sampleRequest()
	r.Path = bytes.Repeat([]byte("a"), abi.MaxFieldBytes+1)
	if _, err := abi.AppendRequest(nil, r); !errors.Is(err, abi.ErrTooLarge) {
		t.Fatalf("oversize path: %v", err)
	}
	r = sampleRequest()
	for len(r.Headers) <= abi.MaxRequestHeaders {
		r.Headers = append(r.Headers, verifier.Header{Name: []byte("x"), Value: []byte("y")})
	}
	if _, err := abi.AppendRequest(nil, r); !errors.Is(err, abi.ErrTooLarge) {
		t.Fatalf("too many headers: %v", err)
	}

	good, _ := abi.AppendRequest(nil, sampleRequest())
	var got verifier.Request
	for name, b := range map[string][]byte{
		"empty":          nil,
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte(nil), good...), 0),
		"unknown flag":   patch(good, 1, 0x81),
		"header count":   patch(good, 2, 0xff),
		"token w/o flag": patch(good, 1, 0),
	} {
		if err := abi.DecodeRequest(b, &got); !errors.Is(err, abi.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
		if got.Method != nil || got.Path != nil || len(got.Headers) != 0 || got.Now != 0 {
			t.Errorf("%s: a failed decode left %+v", name, got)
		}
	}
	if err := abi.DecodeRequest(patch(good, 0, 2), &got); !errors.Is(err, abi.ErrVersion) {
		t.Errorf("version 2: %v", err)
	}
}

func patch(b []byte, i int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[i] = v
	return c
}

// TestCodecAllocations: the per-request codec paths reuse their storage.
func TestCodecAllocations(t *testing.T) {
	r := sampleRequest()
	buf := make([]byte, 0, 1024)
	b, _ := abi.AppendRequest(buf, r)
	var got verifier.Request
	_ = abi.DecodeRequest(b, &got)
	if n := testing.AllocsPerRun(100, func() {
		b, _ = abi.AppendRequest(buf[:0], r)
		_ = abi.DecodeRequest(b, &got)
	}); n != 0 {
		t.Errorf("request codec: %.1f allocations", n)
	}

	d := &abi.Decision{Status: 401, Reason: 2, Route: []byte("r"), Headers: []abi.Header{{Name: []byte("a"), Value: []byte("b")}}, Body: []byte("{}")}
	db, _ := abi.AppendDecision(nil, d)
	var dd abi.Decision
	_ = dd.Decode(db)
	out := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() {
		out, _ = abi.AppendDecision(out[:0], d)
		_ = dd.Decode(out)
	}); n != 0 {
		t.Errorf("decision codec: %.1f allocations", n)
	}
}

// TestDecisionFlags: each flag bit travels on its own; bits beyond them are refused.
func TestDecisionFlags(t *testing.T) {
	for _, d := range []abi.Decision{
		{Allow: true, Status: 200},
		{StripQueryToken: true, Status: 401, Reason: 2},
		{TokenCached: true, Status: 401, Reason: 3},
		{Allow: true, StripQueryToken: true, TokenCached: true, Status: 200, Credential: 2},
	} {
		b, err := abi.AppendDecision(nil, &d)
		if err != nil {
			t.Fatal(err)
		}
		var got abi.Decision
		if err := got.Decode(b); err != nil {
			t.Fatal(err)
		}
		if got.Allow != d.Allow || got.StripQueryToken != d.StripQueryToken || got.TokenCached != d.TokenCached {
			t.Errorf("flags %+v decoded as allow %v strip %v cached %v", d, got.Allow, got.StripQueryToken, got.TokenCached)
		}
		for bit := 3; bit < 8; bit++ {
			if err := got.Decode(patch(b, 1, b[1]|1<<bit)); !errors.Is(err, abi.ErrMalformed) {
				t.Errorf("flag bit %d: %v, want ErrMalformed", bit, err)
			}
		}
	}
}

// TestDecisionsOfEveryProfile encodes the core's decision for every conformance case and
// checks that the decoded form says the same as the core: this is the path every host takes.
func TestDecisionsOfEveryProfile(t *testing.T) {
	for _, name := range profiles.Names() {
		b, err := profiles.Build(name, 1)
		if err != nil {
			t.Fatal(err)
		}
		ld := &abi.Load{Now: b.Now * 1e9, Trusted: []snapshot.TrustedKey{b.Trusted}, Manifest: b.Manifest, Objects: b.Objects}
		enc, err := abi.AppendLoad(nil, ld)
		if err != nil {
			t.Fatal(err)
		}
		var dl abi.Load
		if err := abi.DecodeLoad(enc, &dl); err != nil {
			t.Fatal(err)
		}
		st, err := dl.Open(nil, hostcrypto.Std)
		if err != nil {
			t.Fatal(err)
		}
		var info abi.LoadResult
		abi.Describe(st, &info)
		if info.Version != b.Contents.Version || info.Realm != b.Contents.Realm || len(info.Headers) == 0 {
			t.Fatalf("%s: described %+v", name, info)
		}
		for i := range b.Cases {
			c := &b.Cases[i]
			e := verifier.NewEngine(verifier.Options{})
			e.SetState(st)
			req := &verifier.Request{Now: b.Now * 1e9, Method: []byte(c.Method), Path: []byte(c.Path)}
			if c.QueryToken != "" {
				req.QueryToken, req.HasQueryToken = []byte(c.QueryToken), true
			}
			for _, h := range c.Headers {
				req.Headers = append(req.Headers, verifier.Header{Name: []byte(strings.ToLower(h[0])), Value: []byte(h[1])})
			}
			v := e.Decide(req)
			var d abi.Decision
			d.Set(v)
			enc, err := abi.AppendDecision(nil, &d)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, c.Name, err)
			}
			var got abi.Decision
			if err := got.Decode(enc); err != nil {
				t.Fatalf("%s/%s: %v", name, c.Name, err)
			}
			o := &profiles.Outcome{Status: got.Status, Route: string(got.Route)}
			if got.Allow != v.Allow || got.StripQueryToken != v.StripQueryToken || got.TokenCached != v.TokenCached || got.Reason != uint8(v.Reason) {
				t.Fatalf("%s/%s: flags differ", name, c.Name)
			}
			if !got.Allow {
				o.Reason = v.Reason.String()
				o.Body = got.Body
				o.Headers = map[string]string{}
				for _, h := range got.Headers {
					o.Headers[string(h.Name)] = string(h.Value)
				}
			} else {
				o.Identity = map[string]string{"org": string(got.Org), "key_id": string(got.KeyID), "key_type": string(got.KeyType),
					"scopes": string(got.Scopes), "agent": string(got.Agent), "session": string(got.Session),
					"credential": verifier.Credential(got.Credential).String()}
				if len(got.Identity) != v.NumIdentity {
					t.Fatalf("%s/%s: %d identity headers, want %d", name, c.Name, len(got.Identity), v.NumIdentity)
				}
			}
			if err := c.Check(o); err != nil {
				t.Errorf("%s/%s: %v", name, c.Name, err)
			}
			again, _ := abi.AppendDecision(nil, &got)
			if !bytes.Equal(again, enc) {
				t.Errorf("%s/%s: re-encoding differs", name, c.Name)
			}
		}
	}
}

func TestLoadStatus(t *testing.T) {
	b, err := profiles.Build("opencomputer", 1)
	if err != nil {
		t.Fatal(err)
	}
	ld := &abi.Load{Now: b.Now * 1e9, Trusted: []snapshot.TrustedKey{b.Trusted}, Manifest: b.Manifest, Objects: b.Objects}
	held, err := ld.Open(nil, hostcrypto.Std)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ld.Open(held, hostcrypto.Std); err != nil {
		t.Fatalf("the version held again: %v", err)
	}
	// A newer version of another realm, signed by the same pinned key.
	other, err := profiles.Build("agrenting", 1)
	if err != nil {
		t.Fatal(err)
	}
	other.Contents.Version = b.Contents.Version + 10
	if err := other.Publish(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(other.Trusted.Public, b.Trusted.Public) {
		t.Fatal("fixtures no longer share the manifest key; this case needs one that does")
	}
	ol := &abi.Load{Now: ld.Now, Trusted: ld.Trusted, Manifest: other.Manifest, Objects: other.Objects}
	if _, err := ol.Open(held, hostcrypto.Std); abi.StatusOf(err) != abi.StatusRealm {
		t.Fatalf("realm switch: %v", err)
	}
	newer, err := profiles.Build("opencomputer", 1)
	if err != nil {
		t.Fatal(err)
	}
	newer.Contents.Version++
	if err := newer.Publish(); err != nil {
		t.Fatal(err)
	}
	nl := &abi.Load{Now: ld.Now, Trusted: ld.Trusted, Manifest: newer.Manifest, Objects: newer.Objects}
	if held, err = nl.Open(held, hostcrypto.Std); err != nil {
		t.Fatal(err)
	}
	_, err = ld.Open(held, hostcrypto.Std)
	if abi.StatusOf(err) != abi.StatusRollback {
		t.Fatalf("rollback: %v (status %d)", err, abi.StatusOf(err))
	}
	if le := abi.NewLoadError(err); !errors.Is(le, snapshot.ErrRollback) || le.Error() != err.Error() {
		t.Fatalf("LoadError %v does not match snapshot.ErrRollback", le)
	}
	for s := abi.StatusMalformed; s <= abi.StatusOther; s++ {
		if got := abi.StatusOf(s.Err()); got != s {
			t.Errorf("StatusOf(%v) = %d, want %d", s.Err(), got, s)
		}
	}
	if abi.StatusOf(abi.ErrVersion) != abi.StatusMalformed {
		t.Error("abi.ErrVersion is not StatusMalformed")
	}

	r := &abi.LoadResult{Status: abi.StatusExpired, Error: "x", Version: 7, Realm: "r", QueryParam: "token", Headers: []string{"authorization"}, Strip: []string{"x-org"}}
	enc, err := abi.AppendLoadResult(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := abi.DecodeLoadResult(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != r.Status || got.Version != 7 || got.Realm != "r" || got.QueryParam != "token" || got.Headers[0] != "authorization" || got.Strip[0] != "x-org" || got.Error != "x" {
		t.Fatalf("decoded %+v", got)
	}
}
