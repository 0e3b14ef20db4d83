package abi_test

import (
	"bytes"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// Every decoder: a successful decode re-encodes to the same bytes; a failed one leaves nothing.

func FuzzDecodeRequest(f *testing.F) {
	good, _ := abi.AppendRequest(nil, sampleRequest())
	f.Add(good)
	f.Add(good[:12])
	noToken := sampleRequest()
	noToken.HasQueryToken = false
	b, _ := abi.AppendRequest(nil, noToken)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r verifier.Request
		if err := abi.DecodeRequest(b, &r); err != nil {
			if r.Method != nil || r.Path != nil || r.QueryToken != nil || r.HasQueryToken || len(r.Headers) != 0 || r.Now != 0 {
				t.Fatalf("failed decode left %+v", r)
			}
			return
		}
		again, err := abi.AppendRequest(nil, &r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding: %v\n%x\n%x", err, again, b)
		}
	})
}

func FuzzDecodeDecision(f *testing.F) {
	for _, d := range []*abi.Decision{
		{Status: 401, Reason: 1, Route: []byte("r"), Headers: []abi.Header{{Name: []byte("content-type"), Value: []byte("application/json")}}, Body: []byte(`{"error":"x"}`)},
		{Allow: true, StripQueryToken: true, Status: 200, Credential: 2, Org: []byte("org_1"), KeyID: []byte("key_00"), Identity: []abi.Header{{Name: []byte("x-org"), Value: []byte("org_1")}}},
		{Status: 429, Reason: 12, RetryAfter: 3},
		{Allow: true, TokenCached: true, Status: 200, Credential: 2, Session: []byte("sess_1")},
		{Status: 401, Reason: 3, TokenCached: true, StripQueryToken: true},
	} {
		b, err := abi.AppendDecision(nil, d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d abi.Decision
		if err := d.Decode(b); err != nil {
			if d.Status != 0 || d.Allow || d.Route != nil || d.Body != nil || len(d.Headers) != 0 || len(d.Identity) != 0 {
				t.Fatalf("failed decode left %+v", d)
			}
			return
		}
		again, err := abi.AppendDecision(nil, &d)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding: %v\n%x\n%x", err, again, b)
		}
	})
}

func FuzzDecodeLoad(f *testing.F) {
	for _, l := range []*abi.Load{
		{Now: 1, Trusted: []snapshot.TrustedKey{{Alg: 1, Public: make([]byte, 32)}}, Manifest: []byte("LKSM"), Objects: [][]byte{[]byte("LKSO"), nil}},
		{Now: -1, Trusted: []snapshot.TrustedKey{{Alg: 2, Public: make([]byte, 65)}, {Alg: 1}}, Delta: []byte("d")},
		{Trusted: []snapshot.TrustedKey{{}}, Delta: []byte{}},
	} {
		b, err := abi.AppendLoad(nil, l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l abi.Load
		if err := abi.DecodeLoad(b, &l); err != nil {
			if l.Now != 0 || l.Manifest != nil || l.Delta != nil || len(l.Objects) != 0 || len(l.Trusted) != 0 {
				t.Fatalf("failed decode left %+v", l)
			}
			return
		}
		again, err := abi.AppendLoad(nil, &l)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding: %v\n%x\n%x", err, again, b)
		}
	})
}

func FuzzDecodeLoadResult(f *testing.F) {
	b, _ := abi.AppendLoadResult(nil, &abi.LoadResult{Status: abi.StatusRollback, Error: "e", Version: 3, Realm: "r", QueryParam: "token", Headers: []string{"authorization", "x-api-key"}, Strip: []string{"x-org"}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := abi.DecodeLoadResult(b)
		if err != nil {
			if r != nil {
				t.Fatal("failed decode returned a result")
			}
			return
		}
		again, err := abi.AppendLoadResult(nil, r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding: %v\n%x\n%x", err, again, b)
		}
	})
}
