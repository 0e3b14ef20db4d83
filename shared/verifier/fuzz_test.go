package verifier_test

import (
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// FuzzDecide throws arbitrary requests at every profile's snapshot. Whatever arrives, a
// decision is either an allow with a credential, or a denial with a rendered response whose
// status is one the policy can give; never a panic, never an allow without a credential on a
// route that needs one.
func FuzzDecide(f *testing.F) {
	type loaded struct {
		b  *profiles.Built
		st *verifier.State
	}
	var all []loaded
	for _, name := range profiles.Names() {
		b := build(f, name)
		all = append(all, loaded{b, loadBuilt(f, b)})
		for i := range b.Cases {
			r := request(&b.Cases[i], b.Now)
			hname, hval := "authorization", ""
			if len(r.Headers) > 0 {
				hname, hval = string(r.Headers[0].Name), string(r.Headers[0].Value)
			}
			f.Add(uint8(len(all)-1), string(r.Method), string(r.Path), hname, hval, string(r.QueryToken), r.HasQueryToken, int64(0))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, method, path, hname, hval, query string, hasQuery bool, skew int64) {
		l := all[int(which)%len(all)]
		e := verifier.NewEngine(verifier.Options{TokenCacheSize: 4})
		e.SetState(l.st)
		r := &verifier.Request{
			Now: (l.b.Now + skew%100000) * 1e9, Method: []byte(method), Path: []byte(path),
			QueryToken: []byte(query), HasQueryToken: hasQuery,
			Headers: []verifier.Header{{Name: []byte(hname), Value: []byte(hval)}},
		}
		for range 2 { // the second pass may hit the token cache
			d := e.Decide(r)
			if d.Allow {
				if d.Status != 200 || d.Response != nil {
					t.Fatalf("allow with status %d / response %v", d.Status, d.Response)
				}
				continue
			}
			switch d.Status {
			case 401, 402, 403, 404, 429, 503:
			default:
				t.Fatalf("denial with status %d (%s)", d.Status, d.Reason)
			}
			if d.Response == nil {
				t.Fatalf("denial %d without a rendered response", d.Status)
			}
		}
	})
}
