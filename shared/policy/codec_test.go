package policy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func mustEncode(t testing.TB, p *Policy) []byte {
	t.Helper()
	b, err := Encode(p)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	for name, p := range map[string]*Policy{"sample": samplePolicy(), "router": routerPolicy(), "minimal": {
		Realm: "r", Credentials: []Source{{In: "bearer"}},
	}} {
		b := mustEncode(t, p)
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("%s: Decode(Encode(p)) differs:\n got %+v\nwant %+v", name, back, p)
		}
		again := mustEncode(t, back)
		if !bytes.Equal(again, b) {
			t.Fatalf("%s: Encode(Decode(b)) != b", name)
		}
	}
}

func TestEncodeCanonical(t *testing.T) {
	// Map iteration order must not leak into the encoding.
	p := samplePolicy()
	p.Errors[0].Messages = map[string]string{"expired": "e", "revoked": "r", "invalid": "i", "missing": "m"}
	first := mustEncode(t, p)
	for i := 0; i < 50; i++ {
		if !bytes.Equal(mustEncode(t, p), first) {
			t.Fatalf("encoding is not deterministic")
		}
	}
	// Nil and empty lists encode alike; Decode returns nil.
	q := samplePolicy()
	q.Routes[0].Scopes = []string{}
	q.Errors[2].Messages = map[string]string{}
	q.KeyTypes[0].ScopeCap = []string{}
	b := mustEncode(t, q)
	if !bytes.Equal(b, mustEncode(t, samplePolicy())) {
		t.Fatalf("empty and nil encode differently")
	}
	back, _ := Decode(b)
	if back.Routes[0].Scopes != nil || back.Errors[2].Messages != nil || back.KeyTypes[0].ScopeCap != nil {
		t.Fatalf("Decode returned empty non-nil values")
	}
}

func TestEncodingLayout(t *testing.T) {
	b := mustEncode(t, &Policy{Realm: "r", Credentials: []Source{{In: "bearer"}}})
	want := []byte("LKPL\x01" +
		"\x01\x00r" + // realm
		"\x00\x00" + // scopes
		"\x01\x00" + "\x06\x00bearer" + "\x00\x00" + // credentials
		"\x00\x00" + // key types
		"\x00\x00" + // rate classes
		"\x00" + // tokens absent
		"\x00\x00" + // agent header
		"\x00\x00" + // routes
		"\x00" + // unmatched absent
		"\x00\x00" + // challenge
		"\x00\x00" + // errors
		strings.Repeat("\x00\x00", 7)) // identity
	if !bytes.Equal(b, want) {
		t.Fatalf("layout:\n got %q\nwant %q", b, want)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := mustEncode(t, samplePolicy())
	minimal := mustEncode(t, &Policy{Realm: "r", Credentials: []Source{{In: "bearer"}}})
	withTokens := func(mut func(b []byte)) []byte {
		b := append([]byte(nil), minimal...)
		mut(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrVersion},
		{"bad magic", append([]byte("LKPX"), good[4:]...), ErrVersion},
		{"version 2", append([]byte("LKPL\x02"), good[5:]...), ErrVersion},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrMalformed},
		{"too large", make([]byte, 1<<20+1), ErrTooLarge},
		{"boolean 2", withTokens(func(b []byte) { b[5+3+2+12+2+2] = 2 }), ErrMalformed},
		{"realm length past end", withTokens(func(b []byte) { binary.LittleEndian.PutUint16(b[5:], 0xffff) }), ErrMalformed},
		{"route count past end", append(append([]byte(nil), minimal[:5+3+2+12+2+2+1+2]...), 0xff, 0x0f), ErrMalformed},
		{"invalid policy", withTokens(func(b []byte) { b[7] = '"' }), ErrInvalid},
	}
	for _, tt := range tests {
		p, err := Decode(tt.b)
		if !errors.Is(err, tt.err) || p != nil {
			t.Fatalf("%s: %v %v, want %v", tt.name, p, err, tt.err)
		}
	}
	// Every truncation fails.
	for n := 0; n < len(good); n++ {
		if p, err := Decode(good[:n]); err == nil || p != nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
}

func TestDecodeRefusesUnsortedMessages(t *testing.T) {
	p := samplePolicy()
	p.Errors = []ErrorSpec{{Status: 401, Messages: map[string]string{"expired": "E", "invalid": "I"}}}
	b := mustEncode(t, p)
	i := bytes.Index(b, []byte("\x07\x00expired"))
	j := bytes.Index(b, []byte("\x07\x00invalid"))
	if i < 0 || j < 0 {
		t.Fatalf("messages not found in encoding")
	}
	// Swap the two (equal-length) entries: same content, wrong order.
	swapped := append([]byte(nil), b...)
	entry := len("\x07\x00expired\x01\x00E")
	copy(swapped[i:], b[j:j+entry])
	copy(swapped[j:], b[i:i+entry])
	if p, err := Decode(swapped); !errors.Is(err, ErrMalformed) || p != nil {
		t.Fatalf("unsorted messages: %v", err)
	}
	// Duplicate key.
	dup := append([]byte(nil), b...)
	copy(dup[j:], b[i:i+entry])
	if p, err := Decode(dup); !errors.Is(err, ErrMalformed) || p != nil {
		t.Fatalf("duplicate message key: %v", err)
	}
}

// profileSeeds loads the example profiles (../../examples/profiles) as policies.
func profileSeeds(t testing.TB) map[string]*Policy {
	files, _ := filepath.Glob("../../examples/profiles/*.yaml")
	out := map[string]*Policy{}
	for _, f := range files {
		if strings.HasSuffix(f, ".cases.yaml") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		var p Policy
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = &p
	}
	return out
}

func TestProfilesRoundTrip(t *testing.T) {
	seeds := profileSeeds(t)
	if len(seeds) == 0 {
		t.Skip("no example profiles found")
	}
	for name, p := range seeds {
		b, err := Encode(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if again, _ := Encode(back); !bytes.Equal(again, b) {
			t.Fatalf("%s: not canonical", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(mustEncode(f, samplePolicy()))
	f.Add(mustEncode(f, routerPolicy()))
	for _, p := range profileSeeds(f) {
		f.Add(mustEncode(f, p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if p != nil {
				t.Fatalf("error and a policy")
			}
			return
		}
		again, err := Encode(p)
		if err != nil {
			t.Fatalf("decoded policy does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("Encode(Decode(b)) != b")
		}
		c, err := Compile(p)
		if err != nil {
			t.Fatalf("decoded policy does not compile: %v", err)
		}
		var ps Params
		c.Match([]byte("GET"), []byte("/v1/a/b"), &ps)
		for r := ReasonMissing; r < numReasons; r++ {
			if !validJSON(c.Error(r).Body) {
				t.Fatalf("%v renders invalid JSON: %s", r, c.Error(r).Body)
			}
		}
	})
}
