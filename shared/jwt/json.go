package jwt

import (
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/shared/internal/bytestr"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// scanner is a strict, bounded, allocation-free JSON reader for the two small
// objects a token carries. It does not build a tree: the caller walks the
// top-level object member by member and either reads a value it knows or lets
// the scanner skip (and still fully check) one it does not.
//
// Strict means RFC 8259 with no extensions: no comments, no trailing commas,
// no leading zeros, no lone surrogates, no invalid UTF-8, no raw control
// characters in strings, nothing after the top-level value but whitespace,
// and no duplicate member names in any object (names compared after
// unescaping, so "a" and "\u0061" are the same name). Duplicates matter
// because two parsers that disagree on which duplicate wins can be played
// against each other (the signer's view of a token and the verifier's).
type scanner struct {
	data []byte
	pos  int
	s    *Scratch
}

// objIter walks one object's members; n counts the members seen so far.
type objIter struct {
	level int // nesting level of this object, 1 for the top-level object
	n     int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (d *scanner) skipSpace() {
	for d.pos < len(d.data) && isSpace(d.data[d.pos]) {
		d.pos++
	}
}

// beginObject consumes optional whitespace and the '{' of an object at the
// given nesting level.
func (d *scanner) beginObject(level int) (objIter, error) {
	if level > limits.MaxJSONDepth {
		return objIter{}, ErrTooLarge
	}
	d.skipSpace()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return objIter{}, ErrMalformed
	}
	d.pos++
	return objIter{level: level}, nil
}

// next advances to the next member of the object and returns its (unescaped)
// name, leaving the scanner at the start of the member's value. ok is false
// once the closing '}' has been consumed.
func (d *scanner) next(it *objIter) (name []byte, ok bool, err error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, false, ErrMalformed
	}
	if it.n == 0 {
		if d.data[d.pos] == '}' {
			d.pos++
			return nil, false, nil
		}
	} else {
		switch d.data[d.pos] {
		case '}':
			d.pos++
			return nil, false, nil
		case ',':
			d.pos++
			d.skipSpace()
		default:
			return nil, false, ErrMalformed
		}
	}
	if it.n >= limits.MaxJSONMembers {
		return nil, false, ErrTooLarge
	}
	name, err = d.readString(true)
	if err != nil {
		return nil, false, err
	}
	names := &d.s.names[it.level-1]
	for i := 0; i < it.n; i++ {
		if bytestr.EqualBytes(names[i], name) {
			return nil, false, ErrDuplicateName
		}
	}
	names[it.n] = name
	it.n++
	d.skipSpace()
	if d.pos >= len(d.data) || d.data[d.pos] != ':' {
		return nil, false, ErrMalformed
	}
	d.pos++
	d.skipSpace()
	return name, true, nil
}

// end checks that nothing but whitespace follows the top-level value.
func (d *scanner) end() error {
	d.skipSpace()
	if d.pos != len(d.data) {
		return ErrMalformed
	}
	return nil
}

// peek returns the next non-space byte without consuming it (0 at the end).
func (d *scanner) peek() byte {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return 0
	}
	return d.data[d.pos]
}

// skipValue checks and skips any JSON value. level is the nesting level the
// value would have if it is an object or array.
func (d *scanner) skipValue(level int) error {
	switch d.peek() {
	case '{':
		it, err := d.beginObject(level)
		if err != nil {
			return err
		}
		for {
			_, ok, err := d.next(&it)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := d.skipValue(level + 1); err != nil {
				return err
			}
		}
	case '[':
		if level > limits.MaxJSONDepth {
			return ErrTooLarge
		}
		d.pos++
		if d.peek() == ']' {
			d.pos++
			return nil
		}
		for {
			if err := d.skipValue(level + 1); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.pos++
			case ']':
				d.pos++
				return nil
			default:
				return ErrMalformed
			}
		}
	case '"':
		_, err := d.readString(false)
		return err
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		_, err := d.readNumber()
		return err
	}
}

func (d *scanner) literal(word string) error {
	if !bytestr.HasPrefix(d.data[d.pos:], word) {
		return ErrMalformed
	}
	d.pos += len(word)
	return nil
}

// readNumber checks a JSON number at the current position and returns its
// raw bytes.
func (d *scanner) readNumber() ([]byte, error) {
	data := d.data
	start := d.pos
	i := start
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		return nil, ErrMalformed
	}
	if i < len(data) && data[i] == '.' {
		i++
		j := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == j {
			return nil, ErrMalformed
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == j {
			return nil, ErrMalformed
		}
	}
	d.pos = i
	return data[start:i], nil
}

// readString reads a JSON string at the current position. Without escapes the
// result is a sub-slice of the input; with escapes and want set, the string
// is unescaped into the Scratch's string buffer. With want unset the string is
// only checked and nil is returned.
func (d *scanner) readString(want bool) ([]byte, error) {
	data := d.data
	i := d.pos
	if i >= len(data) || data[i] != '"' {
		return nil, ErrMalformed
	}
	i++
	start := i
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return data[start:i], nil
		case c == '\\':
			return d.readEscaped(start, i, want)
		case c < 0x20:
			return nil, ErrMalformed
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, ErrMalformed
			}
			i += n
		}
	}
	return nil, ErrMalformed
}

// readEscaped continues readString from the first backslash at i; the string's
// contents began at start.
func (d *scanner) readEscaped(start, i int, want bool) ([]byte, error) {
	data := d.data
	s := d.s
	mark := s.strN
	buf := s.str[:]
	w := mark
	// Unescaping never makes a string longer than its escaped form, and each
	// input byte is unescaped at most once per Parse or Claims call, so the
	// buffer (as large as the largest decoded part) cannot fill up; the
	// checks below turn a violated invariant into an error, not a panic.
	put := func(b []byte) bool {
		if !want {
			return true
		}
		if len(buf)-w < len(b) {
			return false
		}
		w += copy(buf[w:], b)
		return true
	}
	if !put(data[start:i]) {
		return nil, ErrTooLarge
	}
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			if !want {
				return nil, nil
			}
			s.strN = w
			return buf[mark:w:w], nil
		case c == '\\':
			if i+1 >= len(data) {
				return nil, ErrMalformed
			}
			var one byte
			switch data[i+1] {
			case '"':
				one = '"'
			case '\\':
				one = '\\'
			case '/':
				one = '/'
			case 'b':
				one = '\b'
			case 'f':
				one = '\f'
			case 'n':
				one = '\n'
			case 'r':
				one = '\r'
			case 't':
				one = '\t'
			case 'u':
				r, n, ok := unicodeEscape(data[i:])
				if !ok {
					return nil, ErrMalformed
				}
				var tmp [utf8.UTFMax]byte
				if !put(tmp[:utf8.EncodeRune(tmp[:], r)]) {
					return nil, ErrTooLarge
				}
				i += n
				continue
			default:
				return nil, ErrMalformed
			}
			if !put([]byte{one}) {
				return nil, ErrTooLarge
			}
			i += 2
		case c < 0x20:
			return nil, ErrMalformed
		case c < utf8.RuneSelf:
			if !put(data[i : i+1]) {
				return nil, ErrTooLarge
			}
			i++
		default:
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, ErrMalformed
			}
			if !put(data[i : i+n]) {
				return nil, ErrTooLarge
			}
			i += n
		}
	}
	return nil, ErrMalformed
}

// unicodeEscape decodes `\uXXXX` (or a surrogate pair `\uD8xx\uDCxx`) at the
// start of b, returning the rune and the number of bytes consumed. Lone or
// reversed surrogates are refused: they cannot be turned into UTF-8, and
// decoders disagree on what to substitute.
func unicodeEscape(b []byte) (rune, int, bool) {
	r, ok := hex4(b)
	if !ok {
		return 0, 0, false
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, 0, false
	case r >= 0xD800 && r <= 0xDBFF:
		lo, ok := hex4(b[6:])
		if !ok || lo < 0xDC00 || lo > 0xDFFF {
			return 0, 0, false
		}
		return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), 12, true
	}
	return r, 6, true
}

// hex4 decodes `\uXXXX` at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// maxSafeInteger is 2^53: beyond it a JSON number is no longer exactly
// representable in the IEEE doubles that JavaScript signers and many JSON
// libraries use, so two parties could read different times from one token.
const maxSafeInteger = 1 << 53

// parseNumericDate reads an RFC 7519 NumericDate restricted to integers:
// no fraction, no exponent, no "-0", magnitude at most 2^53.
func parseNumericDate(raw []byte) (int64, bool) {
	neg := false
	if len(raw) > 0 && raw[0] == '-' {
		neg = true
		raw = raw[1:]
	}
	// 2^53 has 16 decimal digits; readNumber already refused leading zeros.
	if len(raw) == 0 || len(raw) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > maxSafeInteger || (neg && v == 0) {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}
