package store

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// Cursors are opaque to callers: base64url of a kind byte, then the position of the last
// row returned. The kind byte keeps a cursor of one list from being accepted by another.
const (
	cursorKeys     = 'k' // created_at micros (8 bytes, big-endian) + key id
	cursorAudit    = 'a' // event id (8 bytes)
	cursorPolicies = 'p' // version (8 bytes)
	maxCursorBytes = 128
)

func encodeCursor(kind byte, n uint64, s string) string {
	b := make([]byte, 0, 9+len(s))
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, n)
	b = append(b, s...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the position a cursor of kind holds; ok is false for anything a
// cursor of that kind could not be. With wantText the text part must be a key id.
func decodeCursor(kind byte, c string, wantText bool) (n uint64, s string, ok bool) {
	if len(c) > maxCursorBytes {
		return 0, "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	// The decoder skips newlines; comparing with the canonical form refuses them.
	if err != nil || len(b) < 9 || b[0] != kind || base64.RawURLEncoding.EncodeToString(b) != c {
		return 0, "", false
	}
	n, s = binary.BigEndian.Uint64(b[1:9]), string(b[9:])
	if wantText {
		if validKeyID("cursor", s) != nil {
			return 0, "", false
		}
	} else if s != "" {
		return 0, "", false
	}
	return n, s, true
}

// encodeList stores a string list as a JSON array: readable in either database's shell and
// queryable with PostgreSQL's jsonb operators.
func encodeList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // a []string always marshals
	return string(b)
}

// decodeList reads what encodeList wrote, or PostgreSQL's rendering of it (jsonb adds a
// space after each comma). Lists of plain strings (no escapes, no control characters, valid
// UTF-8: all a valid list ever holds in practice) take a fast path that agrees with
// encoding/json, which reads everything else: ActiveKeys decodes two lists per key, and a
// snapshot can have a million keys.
func decodeList(s string) ([]string, error) {
	if out, ok := decodePlainList(s); ok {
		return out, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil || !strings.HasPrefix(trimJSONSpace(s), "[") {
		return nil, errBadList
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func decodePlainList(s string) ([]string, bool) {
	t := trimJSONSpace(s)
	if len(t) < 2 || t[0] != '[' || t[len(t)-1] != ']' || !utf8.ValidString(t) {
		return nil, false
	}
	t = trimJSONSpace(t[1 : len(t)-1])
	if t == "" {
		return nil, true
	}
	out := make([]string, 0, strings.Count(t, ",")+1)
	for {
		if len(t) < 2 || t[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(t[1:], '"')
		if end < 0 {
			return nil, false
		}
		v := t[1 : 1+end]
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] == '\\' {
				return nil, false
			}
		}
		out = append(out, v)
		t = trimJSONSpace(t[2+end:])
		if t == "" {
			return out, true
		}
		if t[0] != ',' {
			return nil, false
		}
		t = trimJSONSpace(t[1:])
	}
}

// trimJSONSpace trims the four characters JSON counts as whitespace.
func trimJSONSpace(s string) string {
	return strings.Trim(s, " \t\n\r")
}

var errBadList = errors.New("store: malformed string list in database")
