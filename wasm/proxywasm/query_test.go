package main

import (
	"net/url"
	"strings"
	"testing"
)

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
		{"/a?token=%zz&token=ok&z", "/a", "ok", "z", true},
		{"/a?token", "/a", "", "", true},
		{"/a?tokens=1&x=%41", "/a", "", "tokens=1&x=%41", false},
	} {
		path, raw, _ := splitTarget(c.target)
		v, ok := queryValue(raw, "token")
		if path != c.path || v != c.value || ok != c.found {
			t.Errorf("%s: path %q, token %q %v", c.target, path, v, ok)
		}
		if got := string(appendWithout(nil, raw, "token")); got != c.without {
			t.Errorf("%s: without the token %q, want %q", c.target, got, c.without)
		}
	}
}

// FuzzQuery: queryValue decodes as url.ParseQuery does (for queries without ';', which
// ParseQuery refuses and edge/filter does not), and appendWithout removes exactly the
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
		got, ok := queryValue(raw, name)
		if vs, has := want[name]; has != ok || has && vs[0] != got {
			t.Fatalf("queryValue(%q, %q) = %q %v, url.ParseQuery %q", raw, name, got, ok, want[name])
		}
		rest := string(appendWithout(nil, raw, name))
		left, _ := url.ParseQuery(rest)
		if _, has := left[name]; has {
			t.Fatalf("appendWithout(%q, %q) = %q still has it", raw, name, rest)
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
			t.Fatalf("appendWithout(%q, %q) = %q, want the other pairs %q", raw, name, rest, kept)
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
