package apikey

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
)

// shared/testdata/vectors/apikey.json was written by an independent implementation (gen-apikey.mjs, Node's zlib.crc32
// and crypto); the Wasm and JS tests run the same file.
func TestVectors(t *testing.T) {
	data, err := os.ReadFile("../testdata/vectors/apikey.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			Name, Prefix, Format, Key, Expect, SHA256, ID string
		}
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < 30 {
		t.Fatalf("only %d vectors", len(file.Vectors))
	}
	for _, v := range file.Vectors {
		f, err := ParseFormat(v.Format)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		s := Spec{Prefix: v.Prefix, Format: f}
		if err := s.Validate(); err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if got := errName(s.Check([]byte(v.Key))); got != v.Expect {
			t.Errorf("%s: Check(%q) = %s, want %s", v.Name, v.Key, got, v.Expect)
		}
		if v.Expect != "ok" {
			continue
		}
		h := HashOf(hostcrypto.Std, []byte(v.Key))
		if h.String() != v.SHA256 || h.ID().String() != v.ID {
			t.Errorf("%s: hash %s id %s, want %s %s", v.Name, h, h.ID(), v.SHA256, v.ID)
		}
	}
}
