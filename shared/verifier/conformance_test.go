package verifier_test

import (
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// loadBuilt verifies a fixture's manifest and opens its snapshot the way every host does.
func loadBuilt(t testing.TB, b *profiles.Built) *verifier.State {
	t.Helper()
	m, err := snapshot.VerifyManifest(b.Manifest, []snapshot.TrustedKey{b.Trusted}, hostcrypto.Std)
	if err != nil {
		t.Fatalf("%s: manifest: %v", b.Profile, err)
	}
	if err := m.CheckFresh(b.Now, 0); err != nil {
		t.Fatalf("%s: manifest: %v", b.Profile, err)
	}
	v, err := snapshot.Open(m, b.Objects, nil, hostcrypto.Std)
	if err != nil {
		t.Fatalf("%s: open: %v", b.Profile, err)
	}
	st, err := verifier.NewState(v)
	if err != nil {
		t.Fatalf("%s: state: %v", b.Profile, err)
	}
	return st
}

// request turns a resolved case into a decision request.
func request(r *profiles.Resolved, now int64) *verifier.Request {
	req := &verifier.Request{Now: now * 1e9, Method: []byte(r.Method), Path: []byte(r.Path)}
	if r.QueryToken != "" {
		req.QueryToken, req.HasQueryToken = []byte(r.QueryToken), true
	}
	for _, h := range r.Headers {
		req.Headers = append(req.Headers, verifier.Header{Name: []byte(h[0]), Value: []byte(h[1])})
	}
	return req
}

// outcome reports a native decision in host-neutral form.
func outcome(st *verifier.State, d *verifier.Decision) *profiles.Outcome {
	o := &profiles.Outcome{Status: d.Status, Route: d.Route}
	if !d.Allow {
		o.Reason = d.Reason.String()
		o.Body = append([]byte(nil), d.Response.Body...)
		o.Headers = map[string]string{}
		for _, h := range d.Response.Headers {
			o.Headers[h.Name] = h.Value
		}
		return o
	}
	o.Identity = map[string]string{
		"org": string(d.Org), "key_id": d.KeyID.String(), "scopes": string(d.Scopes),
		"agent": string(d.Agent), "session": string(d.Session), "credential": d.Credential.String(),
	}
	if kt := d.KeyType; kt != nil {
		o.Identity["key_type"] = kt.Label
	}
	return o
}

// TestConformance runs every profile's documented requests through the native core and checks
// status, reason, route, headers and exact bodies. Other hosts run the same cases under
// TestConformance/<host>/...
func TestConformance(t *testing.T) {
	for _, name := range profiles.Names() {
		b, err := profiles.Build(name, 1)
		if err != nil {
			t.Fatal(err)
		}
		st := loadBuilt(t, b)
		for i := range b.Cases {
			c := &b.Cases[i]
			t.Run("native/"+name+"/"+c.Name, func(t *testing.T) {
				// A fresh engine per case: rate buckets and the token cache must not make one
				// case's outcome depend on the cases before it.
				e := verifier.NewEngine(verifier.Options{})
				e.SetState(st)
				d := e.Decide(request(c, b.Now))
				if err := c.Check(outcome(st, d)); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
