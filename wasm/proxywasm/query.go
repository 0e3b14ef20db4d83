package main

// The query-string helpers of the filter: pure functions, so that native tests run them. They
// read a query as edge/filter (the reference host) does: pairs split at '&', key and value at
// the first '=', each decoded as url.QueryUnescape decodes it, a pair with a malformed escape
// skipped.

// splitTarget splits a request target (":path") into its path and raw query; hasQuery is
// false when there is no '?'.
func splitTarget(target string) (path, rawQuery string, hasQuery bool) {
	for i := 0; i < len(target); i++ {
		if target[i] == '?' {
			return target[:i], target[i+1:], true
		}
	}
	return target, "", false
}

// queryValue returns the first value of the parameter name in raw, decoded.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var pair string
		pair, raw = cutByte(raw, '&')
		k, v := cutByte(pair, '=')
		if !keyIs(k, name) {
			continue
		}
		if !hasEscape(v) {
			return v, true
		}
		if u, ok := unescape(v); ok {
			return u, true
		}
	}
	return "", false
}

// appendWithout appends raw without any pair whose key is name, the other pairs as they were
// and in their order.
func appendWithout(dst []byte, raw, name string) []byte {
	first := true
	for raw != "" {
		var pair string
		pair, raw = cutByte(raw, '&')
		if k, _ := cutByte(pair, '='); keyIs(k, name) {
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

func keyIs(k, name string) bool {
	if !hasEscape(k) {
		return k == name
	}
	u, ok := unescape(k)
	return ok && u == name
}

// cutByte splits s around the first sep; after is "" when there is none.
func cutByte(s string, sep byte) (before, after string) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func hasEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' || s[i] == '+' {
			return true
		}
	}
	return false
}

// unescape decodes %XX escapes and '+' (a space), as url.QueryUnescape does.
func unescape(s string) (string, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			out = append(out, hi<<4|lo)
			i += 2
		case '+':
			out = append(out, ' ')
		default:
			out = append(out, c)
		}
	}
	return string(out), true
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
