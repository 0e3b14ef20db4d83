package abi

// The query credential, read and removed as every host must (ABI.md, Request and Decision):
// a raw query splits into pairs at '&', each pair into key and value at the first '=', and
// both decode as url.QueryUnescape decodes them ('+' is a space); a pair whose key or value
// has a malformed escape is skipped, as url.ParseQuery skips it. One implementation for the
// Go hosts and the guests that read queries themselves (http-wasm, proxy-wasm): a host that
// read the credential differently from another would decide the same request differently.

// QueryValue returns the first value of the parameter name in raw (a query string without
// its '?'), decoded. It allocates only when the value holds an escape.
func QueryValue[S ~string | ~[]byte](raw S, name string) (S, bool) {
	for len(raw) > 0 {
		var pair S
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
	var zero S
	return zero, false
}

// AppendQueryWithout appends raw without every pair whose key is name; the other pairs stay
// as they were, in their order.
func AppendQueryWithout[S ~string | ~[]byte](dst []byte, raw S, name string) []byte {
	first := true
	for len(raw) > 0 {
		var pair S
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

// SplitTarget splits a request target into its path and raw query; hasQuery is false when
// there is no '?'.
func SplitTarget[S ~string | ~[]byte](target S) (path, rawQuery S, hasQuery bool) {
	for i := 0; i < len(target); i++ {
		if target[i] == '?' {
			return target[:i], target[i+1:], true
		}
	}
	return target, target[len(target):], false
}

func keyIs[S ~string | ~[]byte](k S, name string) bool {
	if !hasEscape(k) {
		return string(k) == name
	}
	u, ok := unescape(k)
	return ok && string(u) == name
}

// cutByte splits s around the first sep; after is empty when there is none.
func cutByte[S ~string | ~[]byte](s S, sep byte) (before, after S) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, s[len(s):]
}

func hasEscape[S ~string | ~[]byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' || s[i] == '+' {
			return true
		}
	}
	return false
}

// unescape decodes %XX escapes and '+' (a space), as url.QueryUnescape does.
func unescape[S ~string | ~[]byte](s S) (S, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+2 >= len(s) {
				return s[:0], false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return s[:0], false
			}
			out = append(out, hi<<4|lo)
			i += 2
		case '+':
			out = append(out, ' ')
		default:
			out = append(out, c)
		}
	}
	return S(out), true
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
