package apikey

import "testing"

func TestMatcherLongestPrefixWins(t *testing.T) {
	for _, prefixes := range [][]string{
		{"tb_", "tb_internal_"},
		{"tb_internal_", "tb_"},
	} {
		m := NewMatcher(prefixes)
		idx := func(p string) int {
			for i, q := range prefixes {
				if q == p {
					return i
				}
			}
			return -2
		}
		for _, c := range []struct {
			key, want string
		}{
			{"tb_internal_xxx", "tb_internal_"},
			{"tb_internal_", "tb_internal_"},
			{"tb_xxx", "tb_"},
			{"tb_internal", "tb_"}, // one character short of the longer prefix
			{"tb_internalxxx", "tb_"},
		} {
			if got := m.Match([]byte(c.key)); got != idx(c.want) {
				t.Errorf("%v: Match(%q) = %d, want %d (%q)", prefixes, c.key, got, idx(c.want), c.want)
			}
		}
	}
}

func TestMatcherNoMatch(t *testing.T) {
	m := NewMatcher([]string{"tb_", "tb_internal_", "ac_live_", "tk_"})
	for _, key := range []string{"", "t", "tb", "TB_xxx", "xtb_xxx", "ac_", "ac_test_xxx", "tk", "at_xxx"} {
		if got := m.Match([]byte(key)); got != -1 {
			t.Errorf("Match(%q) = %d, want -1", key, got)
		}
	}
	var zero Matcher
	if zero.Match([]byte("tb_xxx")) != -1 || zero.Match(nil) != -1 {
		t.Fatal("zero Matcher matched")
	}
}

func TestMatcherOrderAndDuplicates(t *testing.T) {
	prefixes := []string{"a_", "", "ac_live_", "ac_", "a_", "ac_live_x"}
	m := NewMatcher(prefixes)
	for _, c := range []struct {
		key  string
		want int
	}{
		{"ac_live_xyz", 5},
		{"ac_live_abc", 2},
		{"ac_test", 3},
		{"a_b", 0}, // duplicate prefix: the first index
		{"zzz", 1}, // empty prefix: matches anything, last resort
		{"", 1},
	} {
		if got := m.Match([]byte(c.key)); got != c.want {
			t.Errorf("Match(%q) = %d, want %d", c.key, got, c.want)
		}
	}
	// The Matcher owns a copy: changing the caller's slice changes nothing.
	prefixes[2] = "zz"
	if m.Match([]byte("ac_live_abc")) != 2 {
		t.Fatal("Matcher shares the caller's slice")
	}
}
