package jwt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanDoc checks a whole document whose top level is an object.
func scanDoc(s *Scratch, doc []byte) error {
	s.strN = 0
	d := scanner{data: doc, s: s}
	it, err := d.beginObject(1)
	if err != nil {
		return err
	}
	for {
		_, ok, err := d.next(&it)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := d.skipValue(2); err != nil {
			return err
		}
	}
	return d.end()
}

func TestScannerDocuments(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want error
	}{
		{`{}`, nil},
		{" \t\r\n{ } \t\r\n", nil},
		{`{"a":[],"b":{},"c":[[]],"d":-0.5E+10,"e":0,"f":-0,"g":1e-0,"h":""}`, nil},
		{`{"a":"\u0000"}`, nil},
		{`{"a":"\uD834\uDD1E"}`, nil},
		{`{"a":"\uFFFF\uFFFE"}`, nil},
		{"{\"a\":\"\xef\xbf\xbd\"}", nil}, // U+FFFD itself is fine
		{"{\"a\":\"\x7f\"}", nil},
		{`{"a":"\uD834"}`, ErrMalformed},
		{`{"a":"\uDD1E"}`, ErrMalformed},
		{`{"a":"\uD834\uD834"}`, ErrMalformed},
		{`{"a":"\uD834x"}`, ErrMalformed},
		{`{"a":"\uD834\n"}`, ErrMalformed},
		{`{"a":"\U0041"}`, ErrMalformed},
		{`{"a":"\'"}`, ErrMalformed},
		{`{"a":"`, ErrMalformed},
		{`{"a":"\`, ErrMalformed},
		{`{"a":"\u00`, ErrMalformed},
		{`{"a"`, ErrMalformed},
		{`{"a":`, ErrMalformed},
		{`{"a":1`, ErrMalformed},
		{`{"a":[1`, ErrMalformed},
		{`{"a":{`, ErrMalformed},
		{`{`, ErrMalformed},
		{``, ErrMalformed},
		{`{} {}`, ErrMalformed},
		{`{"a":00}`, ErrMalformed},
		{`{"a":-01}`, ErrMalformed},
		{`{"a":0x1}`, ErrMalformed},
		{`{"a":Infinity}`, ErrMalformed},
		{`{"a":NaN}`, ErrMalformed},
		{`{"a":True}`, ErrMalformed},
		{`{"a":truex}`, ErrMalformed},
		{`{"a":1,"a":2}`, ErrDuplicateName},
		{`{"a":1,"\u0061":2}`, ErrDuplicateName},
		{`{"\u00e9":1,"é":2}`, ErrDuplicateName},
		{`{"é":1,"e\u0301":2}`, nil}, // no Unicode normalisation: different bytes, different names
		{`{"a":{"b":1,"b":2}}`, ErrDuplicateName},
		{`{"a":[{"b":1},{"b":2}]}`, nil},
		{`{"a":{"b":1},"b":{"a":1}}`, nil},
		{"{\"a\":\"\xe2\x82\"}", ErrMalformed},
		{"{\"a\":\"\xf4\x90\x80\x80\"}", ErrMalformed}, // beyond U+10FFFF
		{"{\"\xff\":1}", ErrMalformed},
		{"{\"a\":\"\x1f\"}", ErrMalformed},
		{"{\"a\":1}\x00", ErrMalformed},
		{"\xef\xbb\xbf{}", ErrMalformed}, // BOM
		{strings.Repeat(`{"a":`, 8) + `1` + strings.Repeat(`}`, 8), nil},
		{strings.Repeat(`{"a":`, 9) + `1` + strings.Repeat(`}`, 9), ErrTooLarge},
		{`{"a":` + strings.Repeat(`[`, 7) + strings.Repeat(`]`, 7) + `}`, nil},
		{`{"a":` + strings.Repeat(`[`, 8) + strings.Repeat(`]`, 8) + `}`, ErrTooLarge},
		{`{"a":` + strings.Repeat(`[`, 5000), ErrTooLarge},
	} {
		var s Scratch
		err := scanDoc(&s, []byte(tc.doc))
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("%q: got %v, want %v", tc.doc, err, tc.want)
		}
		if err == nil && !json.Valid([]byte(tc.doc)) {
			t.Fatalf("%q accepted but encoding/json says it is not JSON", tc.doc)
		}
	}
}

func TestScannerUnescape(t *testing.T) {
	for _, in := range []string{
		`""`, `"abc"`, `"a\"b"`, `"\\\/\b\f\n\r\t"`, `"\u0041\u00e9\u20ac\ud83d\ude00"`,
		`"x\u0000y"`, `"\uFFFF"`, `"héllo \ud800\udc00 wörld"`, `"\uDBFF\uDFFF"`,
	} {
		var s Scratch
		d := scanner{data: []byte(in), s: &s}
		got, err := d.readString(true)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var want string
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("%s: got %q, want %q", in, got, want)
		}
		if !strings.Contains(in, `\`) && len(got) > 0 && &got[0] != &d.data[1] {
			t.Fatalf("%s: unescaped string was copied", in)
		}
	}
}

func TestParseNumericDate(t *testing.T) {
	for _, tc := range []struct {
		in string
		v  int64
		ok bool
	}{
		{"0", 0, true},
		{"1", 1, true},
		{"-1", -1, true},
		{"9007199254740992", 1 << 53, true},
		{"-9007199254740992", -1 << 53, true},
		{"9007199254740993", 0, false},
		{"10000000000000000", 0, false},
		{"-0", 0, false},
		{"1.0", 0, false},
		{"1e3", 0, false},
		{"", 0, false},
		{"-", 0, false},
	} {
		v, ok := parseNumericDate([]byte(tc.in))
		if v != tc.v || ok != tc.ok {
			t.Fatalf("parseNumericDate(%q) = %d, %v", tc.in, v, ok)
		}
	}
}

// FuzzScanner compares the scanner with encoding/json: whatever the scanner
// accepts must be JSON, and every string it unescapes must equal
// encoding/json's reading of it.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"a":"\u00e9\ud83d\ude00"}`, `{"a":[1,{"b":null}]}`, `{"a":1,"\u0061":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var s Scratch
		err := scanDoc(&s, doc)
		if err == nil && !json.Valid(doc) {
			t.Fatalf("%q accepted, not JSON", doc)
		}
		if err == nil {
			var m map[string]any
			if json.Unmarshal(doc, &m) != nil {
				t.Fatalf("%q accepted, encoding/json cannot read it", doc)
			}
		}
		// The bytes as one string.
		d := scanner{data: doc, s: &s}
		s.strN = 0
		got, err := d.readString(true)
		if err != nil {
			return
		}
		var want string
		if json.Unmarshal(doc[:d.pos], &want) != nil {
			t.Fatalf("%q: string accepted, encoding/json refuses it", doc[:d.pos])
		}
		if string(got) != want || !utf8.Valid(got) {
			t.Fatalf("%q: got %q, want %q", doc[:d.pos], got, want)
		}
	})
}
