package abi_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// TestQuery: the credential's value, the query without it, and the split of a request target,
// as strings and as bytes alike.
func TestQuery(t *testing.T) {
	for _, c := range []struct {
		target, path, value, without string
		found                        bool
	}{
		{"/a", "/a", "", "", false},
		{"/a?", "/a", "", "", false},
		{"/a?token=t1", "/a", "t1", "", true},
		{"/a?x=1&token=t%2B1&y=2", "/a", "t+1", "x=1&y=2", true},
		{"/a?x=1&to%6Ben=a+b&token=second", "/a", "a b", "x=1", true},
		{"/a?x=1&token=a&token=b", "/a", "a", "x=1", true},
		{"/a?tok%65n=a%2Eb&z", "/a", "a.b", "z", true},
		{"/a?token=%zz&token=ok&z", "/a", "ok", "z", true},
		{"/a?token", "/a", "", "", true},
		{"/a?tokens=1&x=%41&xtoken=b", "/a", "", "tokens=1&x=%41&xtoken=b", false},
		{"/a?a=1&token=x&b=%zz", "/a", "x", "a=1&b=%zz", true},
	} {
		path, raw, _ := abi.SplitTarget(c.target)
		v, ok := abi.QueryValue(raw, "token")
		if path != c.path || v != c.value || ok != c.found {
			t.Errorf("%s: path %q, token %q %v", c.target, path, v, ok)
		}
		if got := string(abi.AppendQueryWithout(nil, raw, "token")); got != c.without {
			t.Errorf("%s: without the token %q, want %q", c.target, got, c.without)
		}
		bpath, braw, _ := abi.SplitTarget([]byte(c.target))
		bv, bok := abi.QueryValue(braw, "token")
		if string(bpath) != c.path || string(bv) != c.value || bok != c.found {
			t.Errorf("%s as bytes: path %q, token %q %v", c.target, bpath, bv, bok)
		}
		if got := string(abi.AppendQueryWithout(nil, braw, "token")); got != c.without {
			t.Errorf("%s as bytes: without the token %q, want %q", c.target, got, c.without)
		}
	}
}

// FuzzQuery: QueryValue decodes as url.ParseQuery does (for queries without ';', which
// ParseQuery refuses and the hosts do not), and AppendQueryWithout removes exactly the
// parameter, every other pair kept byte for byte.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"token=a%20b&x=1", "to%6Ben=1&token=2", "token=%zz&token=+", "=&&token", "x=%4"} {
		f.Add(s, "token")
	}
	f.Fuzz(func(t *testing.T, raw, name string) {
		if strings.Contains(raw, ";") || name == "" {
			return
		}
		want, _ := url.ParseQuery(raw)
		got, ok := abi.QueryValue(raw, name)
		if vs, has := want[name]; has != ok || has && vs[0] != got {
			t.Fatalf("QueryValue(%q, %q) = %q %v, url.ParseQuery %q", raw, name, got, ok, want[name])
		}
		if bgot, bok := abi.QueryValue([]byte(raw), name); bok != ok || string(bgot) != got {
			t.Fatalf("QueryValue on bytes differs: %q %v", bgot, bok)
		}
		rest := string(abi.AppendQueryWithout(nil, raw, name))
		left, _ := url.ParseQuery(rest)
		if _, has := left[name]; has {
			t.Fatalf("AppendQueryWithout(%q, %q) = %q still has it", raw, name, rest)
		}
		var kept []string
		for _, pair := range pairs(raw) {
			k, _, _ := strings.Cut(pair, "=")
			if u, err := url.QueryUnescape(k); err == nil && u == name {
				continue
			}
			kept = append(kept, pair)
		}
		if got := pairs(rest); strings.Join(got, "&") != strings.Join(kept, "&") {
			t.Fatalf("AppendQueryWithout(%q, %q) = %q, want the other pairs %q", raw, name, rest, kept)
		}
	})
}

// pairs are the non-empty pairs of a query (empty ones mean nothing to any parser).
func pairs(raw string) []string {
	var out []string
	for _, p := range strings.Split(raw, "&") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
