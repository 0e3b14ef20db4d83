package main

// This file holds the guest's pure helpers: no host calls, so that native tests run them.

// queryValue returns the first value of the query parameter name in raw, decoded as
// url.ParseQuery would (pairs with a malformed escape are skipped), like edge/filter.
func queryValue(raw []byte, name string) ([]byte, bool) {
	for len(raw) > 0 {
		var pair []byte
		pair, raw = cut(raw, '&')
		k, v := cut(pair, '=')
		if !keyIs(k, name) {
			continue
		}
		if hasEscape(v) {
			u, ok := unescape(v)
			if !ok {
				continue
			}
			v = u
		}
		return v, true
	}
	return nil, false
}

// stripQuery returns raw without every pair whose key is name, the other pairs as they were.
func stripQuery(dst, raw []byte, name string) []byte {
	first := true
	for len(raw) > 0 {
		var pair []byte
		pair, raw = cut(raw, '&')
		k, _ := cut(pair, '=')
		if keyIs(k, name) {
			continue
		}
		if !first {
			dst = append(dst, '&')
		}
		first = false
		dst = append(dst, pair...)
	}
	return dst
}

func keyIs(k []byte, name string) bool {
	if !hasEscape(k) {
		return string(k) == name
	}
	u, ok := unescape(k)
	return ok && string(u) == name
}

// cut splits b around the first sep; after is nil when there is none.
func cut(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '%' || c == '+' {
			return true
		}
	}
	return false
}

// unescape decodes a query component: %XX escapes and '+' for space (url.QueryUnescape).
func unescape(b []byte) ([]byte, bool) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '%':
			if i+2 >= len(b) {
				return nil, false
			}
			h, ok1 := unhex(b[i+1])
			l, ok2 := unhex(b[i+2])
			if !ok1 || !ok2 {
				return nil, false
			}
			out = append(out, h<<4|l)
			i += 2
		case '+':
			out = append(out, ' ')
		default:
			out = append(out, c)
		}
	}
	return out, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
