package apikey

import "github.com/latchkeyhq/latchkey/shared/internal/bytestr"

// Matcher finds which key type a presented key belongs to by its prefix. When several
// prefixes match ("tb_" and "tb_internal_" both match "tb_internal_…"), the longest wins:
// every key of the longer type also starts with the shorter prefix, so the longer prefix
// is the only one that can tell the two types apart.
//
// The zero Matcher matches nothing. A Matcher is read-only after NewMatcher and safe for
// concurrent use.
type Matcher struct {
	entries []matchEntry // longest prefix first; among equal lengths, input order
}

type matchEntry struct {
	prefix string
	index  int
}

// NewMatcher returns a Matcher over prefixes; Match reports indexes into this slice. The
// slice is copied. If a prefix appears twice, its first index is reported. An empty
// prefix matches every key, with the lowest priority.
func NewMatcher(prefixes []string) Matcher {
	e := make([]matchEntry, len(prefixes))
	for i, p := range prefixes {
		e[i] = matchEntry{prefix: p, index: i}
	}
	// Insertion sort: stable, no reflection, and a realm has few key types.
	for i := 1; i < len(e); i++ {
		for j := i; j > 0 && len(e[j].prefix) > len(e[j-1].prefix); j-- {
			e[j], e[j-1] = e[j-1], e[j]
		}
	}
	return Matcher{entries: e}
}

// Match returns the index of the longest prefix key starts with, or -1 if none. It does
// not allocate.
func (m *Matcher) Match(key []byte) int {
	for i := range m.entries {
		p := m.entries[i].prefix
		if bytestr.HasPrefix(key, p) {
			return m.entries[i].index
		}
	}
	return -1
}
