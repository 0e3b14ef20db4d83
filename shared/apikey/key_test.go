package apikey

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestKeyNotPrintedByAccident prints a key every way a log line or error message might,
// and requires that no 6 consecutive characters of its secret part ever appear.
func TestKeyNotPrintedByAccident(t *testing.T) {
	secret := makeBase62("tb_", body30) // tb_1wV8bQ3kZ7pY2xR9mN4cT6hJ0sL5dF4DB6a3
	k := NewKey(secret)
	type exported struct{ Key Key }
	type unexported struct{ key Key }
	type pointer struct{ K *Key }

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%p"} {
		for _, v := range []any{k, &k, exported{k}, &exported{k}, unexported{k}, &unexported{k}, pointer{&k}, []Key{k}, map[string]Key{"a": k}, [1]Key{k}} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
	}
	outs = append(outs, fmt.Sprint(k), fmt.Sprintln(k, &k), k.String(), k.GoString(), fmt.Errorf("bad key %v", k).Error())
	for _, v := range []any{k, exported{k}, map[string]Key{"a": k}} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(j), string(y))
	}

	hidden := secret[3 : len(secret)-4]
	for _, out := range outs {
		for i := 0; i+6 <= len(hidden); i++ {
			if strings.Contains(out, hidden[i:i+6]) {
				t.Fatalf("output %q reveals %q of the secret", out, hidden[i:i+6])
			}
		}
	}
	if got := fmt.Sprintf("%v|%+v|%s", k, k, k); got != "tb_…B6a3|tb_…B6a3|tb_…B6a3" {
		t.Fatalf("redacted forms: %q", got)
	}
	if got := fmt.Sprintf("%#v", k); got != `apikey.Key("tb_…B6a3")` {
		t.Fatalf("%%#v = %q", got)
	}
	if k.Reveal() != secret {
		t.Fatal("Reveal lost the key")
	}
}

func TestKeyRedactedForms(t *testing.T) {
	for _, c := range []struct {
		key, str, last4 string
	}{
		{makeBase62("tb_", body30), "tb_…B6a3", "B6a3"},
		{makeBase62("tb_internal_", body30), "tb_internal_…" + refChecksum("tb_internal_" + body30)[2:], refChecksum("tb_internal_" + body30)[2:]},
		{"tk_" + strings.Repeat("ab", 32), "tk_…abab", "abab"},
		// Hex and base62 bodies may start with lowercase letters and digits: the visible
		// prefix still ends at the last '_'.
		{"ac_live_abc123" + strings.Repeat("Z", 30), "ac_live_…ZZZZ", "ZZZZ"},
		{"", "", ""},
		// Not shaped like a key (under 16 characters after a prefix): show nothing of it.
		{"hunter2_", "…", ""},
		{"tb_short", "…", ""},
		{"0123456789abcde", "…", ""},
		{"0123456789abcdef", "…cdef", "cdef"},
		// Control characters and partial UTF-8 at the end are never echoed.
		{"tb_" + strings.Repeat("a", 20) + "ab\n\x1b", "tb_…", ""},
		{"tb_" + strings.Repeat("a", 20) + "aé", "tb_…", ""},
		// A visible prefix never exceeds limits.MaxPrefixBytes.
		{strings.Repeat("a_", 30) + strings.Repeat("B", 20), "a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_…BBBB", "BBBB"},
	} {
		k := NewKey(c.key)
		if k.String() != c.str || k.Last4() != c.last4 {
			t.Errorf("NewKey(%q): String %q, Last4 %q; want %q, %q", c.key, k.String(), k.Last4(), c.str, c.last4)
		}
	}
	var zero Key
	if zero.String() != "" || zero.Reveal() != "" || zero.Last4() != "" || zero.GoString() != `apikey.Key("")` {
		t.Fatal("zero Key is not empty")
	}
}

func TestKeyEqual(t *testing.T) {
	a := makeBase62("tb_", body30)
	b := []byte(a)
	b[10] ^= 1
	for _, c := range []struct {
		x, y Key
		want bool
	}{
		{NewKey(a), NewKey(a), true},
		{NewKey(a), NewKey(strings.Clone(a)), true},
		{NewKey(a), NewKey(string(b)), false},
		{NewKey(a), NewKey(a[:len(a)-1]), false},
		{NewKey(a), NewKey(a + "x"), false},
		{NewKey(a), Key{}, false},
		// An empty key must never authenticate, not even against another empty key.
		{Key{}, Key{}, false},
		{NewKey(""), NewKey(""), false},
	} {
		if c.x.Equal(c.y) != c.want || c.y.Equal(c.x) != c.want {
			t.Errorf("Equal(%q, %q) != %v", c.x.Reveal(), c.y.Reveal(), c.want)
		}
	}
}

// Keys must not be comparable with == (which is not constant time and, on the pointer
// inside, would compare identity, not the secret).
func TestKeyNotComparable(t *testing.T) {
	if reflect.TypeFor[Key]().Comparable() {
		t.Fatal("Key is comparable")
	}
}
