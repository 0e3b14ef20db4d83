package apikey

import "github.com/latchkeyhq/latchkey/shared/limits"

// Key is a plaintext API key: a secret. It is returned exactly once, when a key is
// created or rotated, and otherwise never held.
//
// Printing a Key with any fmt verb, marshalling it to JSON or YAML, or printing a struct
// that holds one shows at most its prefix and last 4 characters: the text sits behind a
// pointer, so even printers that bypass String (an unexported field, %d) see an address.
// Keys cannot be compared with == (compile error); use Equal.
type Key struct {
	_ [0]func() // makes Key incomparable: == on secrets is neither constant time nor intended
	p *string
}

// NewKey wraps s as a Key without checking it against any Spec.
func NewKey(s string) Key { return Key{p: &s} }

// Reveal returns the plaintext. Call it only where the key must leave the process: the
// one response that hands a new key to its owner.
func (k Key) Reveal() string {
	if k.p == nil {
		return ""
	}
	return *k.p
}

// minHiddenLen is how many characters after the visible prefix a key must have before
// the redacted form shows the prefix and the last 4 characters; it is the shortest body
// of any format. Anything shorter is not shaped like a key and is shown as "…" alone.
const minHiddenLen = OpaqueMinBodyLen

// redactedParts splits s into what its redacted form may show.
func redactedParts(s string) (prefix, last4 string, ok bool) {
	// The visible prefix ends at the last '_' of the leading run of prefix characters
	// ([a-z0-9_]), capped at limits.MaxPrefixBytes. Base62 and hex bodies contain no '_',
	// so for the formats latchkey generates this is exactly the key type's prefix.
	end, i := 0, 0
	for ; i < len(s) && i < limits.MaxPrefixBytes && classes[s[i]]&classPrefix != 0; i++ {
		if s[i] == '_' {
			end = i + 1
		}
	}
	if len(s)-end < minHiddenLen {
		return "", "", false
	}
	last4 = s[len(s)-4:]
	if !allIn(last4, classOpaque) {
		// Never echo control characters or partial UTF-8 into logs.
		last4 = ""
	}
	return s[:end], last4, true
}

// String returns the redacted form: prefix + "…" + last 4 characters ("tb_…a1B2"), just
// "…" for text not shaped like a key, and "" for an empty Key.
func (k Key) String() string {
	s := k.Reveal()
	if s == "" {
		return ""
	}
	prefix, last4, ok := redactedParts(s)
	if !ok {
		return "…"
	}
	return prefix + "…" + last4
}

// GoString returns the redacted form for %#v.
func (k Key) GoString() string { return `apikey.Key("` + k.String() + `")` }

// Last4 returns the last 4 characters, which listings show to tell keys apart. It
// returns "" when the key is too short for that to be safe or ends in characters outside
// [A-Za-z0-9_-].
func (k Key) Last4() string {
	_, last4, _ := redactedParts(k.Reveal())
	return last4
}

// Equal reports whether k and o are the same key, in time that depends only on their
// lengths. An empty Key equals nothing, not even another empty Key, so a missing key can
// never match one.
func (k Key) Equal(o Key) bool {
	a, b := k.Reveal(), o.Reveal()
	if len(a) == 0 || len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return v == 0
}
