package main

import (
	"net/url"
	"strings"
	"testing"
)

// TestQuery: queryValue decodes the first value as url.ParseQuery does, and stripQuery drops
// every pair of the parameter and keeps the others as they were (as edge/filter).
func TestQuery(t *testing.T) {
	for _, raw := range []string{
		"", "token=a", "a=1&token=x%2By&b=2", "token=1&token=2", "to%6Ben=z", "token=%zz&token=ok",
		"token", "token=", "a=1", "tok+en=1&token=a+b", "&&token=%41&", "token=%4",
	} {
		v, ok := queryValue([]byte(raw), "token")
		want, wantOK := "", false
		for _, pair := range strings.Split(raw, "&") {
			k, val, _ := strings.Cut(pair, "=")
			uk, err1 := url.QueryUnescape(k)
			uv, err2 := url.QueryUnescape(val)
			if pair != "" && err1 == nil && err2 == nil && uk == "token" {
				want, wantOK = uv, true
				break
			}
		}
		if ok != wantOK || string(v) != want {
			t.Errorf("queryValue(%q) = %q %v, want %q %v", raw, v, ok, want, wantOK)
		}
		stripped := string(stripQuery(nil, []byte(raw), "token"))
		q, _ := url.ParseQuery(stripped)
		if q.Has("token") || strings.Contains(stripped, "token=") {
			t.Errorf("stripQuery(%q) = %q", raw, stripped)
		}
	}
	if got := string(stripQuery(nil, []byte("a=1&token=x&b=%zz"), "token")); got != "a=1&b=%zz" {
		t.Errorf("stripQuery kept %q", got)
	}
}
