package apikey

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
)

func TestHashOf(t *testing.T) {
	key := makeBase62("tb_", body30)
	h := HashOf(hostcrypto.Std, []byte(key))
	if h != Hash(sha256.Sum256([]byte(key))) {
		t.Fatal("HashOf is not SHA-256 of the full key")
	}
	// The prefix is part of what is hashed: the same body under another type differs.
	if HashOf(hostcrypto.Std, []byte("tx_"+key[3:])) == h {
		t.Fatal("prefix not hashed")
	}
	id := h.ID()
	if string(id[:]) != string(h[:IDSize]) {
		t.Fatal("ID is not the hash prefix")
	}
	if id.String() != "key_"+hex.EncodeToString(h[:10]) {
		t.Fatalf("ID text %q", id.String())
	}
}

func TestHashText(t *testing.T) {
	var h Hash
	for i := range h {
		h[i] = byte(i * 37)
	}
	s := h.String()
	if s != hex.EncodeToString(h[:]) {
		t.Fatalf("String %q", s)
	}
	got, err := ParseHash(s)
	if err != nil || got != h {
		t.Fatalf("ParseHash(%q) = %x, %v", s, got, err)
	}
	m, _ := h.MarshalText()
	a, _ := h.AppendText([]byte("x"))
	if string(m) != s || string(a) != "x"+s {
		t.Fatalf("MarshalText %q, AppendText %q", m, a)
	}
	var u Hash
	if err := u.UnmarshalText(m); err != nil || u != h {
		t.Fatalf("UnmarshalText: %x, %v", u, err)
	}
	// JSON uses the text form, as a value and as a map key.
	j, err := json.Marshal(map[Hash]Hash{h: h})
	if err != nil || string(j) != `{"`+s+`":"`+s+`"}` {
		t.Fatalf("json %s, %v", j, err)
	}
	var back map[Hash]Hash
	if err := json.Unmarshal(j, &back); err != nil || back[h] != h {
		t.Fatalf("json round trip: %v, %v", back, err)
	}
}

func TestParseHashRejects(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{
		"",
		good[:63],
		good + "0",
		strings.ToUpper(good),
		good[:63] + "A",
		good[:63] + "g",
		"0x" + good[:62],
		" " + good[:63],
		good[:63] + "\n",
		good[:62] + "é",
	} {
		h, err := ParseHash(s)
		if err != ErrHash || h != (Hash{}) {
			t.Errorf("ParseHash(%q) = %x, %v", s, h, err)
		}
		u := Hash{1}
		if err := u.UnmarshalText([]byte(s)); err != ErrHash || u != (Hash{1}) {
			t.Errorf("UnmarshalText(%q) changed the hash or did not fail: %v", s, err)
		}
	}
}

func TestIDText(t *testing.T) {
	id := ID{0x00, 0x01, 0x7f, 0x80, 0xff, 0xa5, 0x5a, 0x10, 0x20, 0x30}
	const s = "key_00017f80ffa55a102030"
	if id.String() != s {
		t.Fatalf("String %q", id.String())
	}
	for _, parse := range []func(string) (ID, error){ParseID, func(s string) (ID, error) { return ParseIDBytes([]byte(s)) }} {
		got, err := parse(s)
		if err != nil || got != id {
			t.Fatalf("parse(%q) = %x, %v", s, got, err)
		}
	}
	m, _ := id.MarshalText()
	buf := make([]byte, 0, 64)
	a, _ := id.AppendText(append(buf, "id="...))
	if string(m) != s || string(a) != "id="+s {
		t.Fatalf("MarshalText %q, AppendText %q", m, a)
	}
	var u ID
	if err := u.UnmarshalText(m); err != nil || u != id {
		t.Fatalf("UnmarshalText: %x, %v", u, err)
	}
	j, err := json.Marshal(struct{ ID ID }{id})
	if err != nil || string(j) != `{"ID":"`+s+`"}` {
		t.Fatalf("json %s, %v", j, err)
	}
}

func TestParseIDRejects(t *testing.T) {
	const good = "key_00017f80ffa55a102030"
	for _, s := range []string{
		"",
		"key_",
		good[:len(good)-1],
		good + "0",
		"KEY_00017f80ffa55a102030",
		"key-00017f80ffa55a102030",
		"kex_00017f80ffa55a102030",
		"key_00017F80FFA55A102030",
		"key_00017f80ffa55a10203g",
		"00017f80ffa55a1020300000",
		" key_00017f80ffa55a10203",
		"key_00017f80ffa55a10203\x00",
		"key_" + strings.Repeat("0", 64), // a full hash is not an id
	} {
		id, err := ParseID(s)
		if err != ErrID || id != (ID{}) {
			t.Errorf("ParseID(%q) = %x, %v", s, id, err)
		}
		if id, err := ParseIDBytes([]byte(s)); err != ErrID || id != (ID{}) {
			t.Errorf("ParseIDBytes(%q) = %x, %v", s, id, err)
		}
		u := ID{1}
		if err := u.UnmarshalText([]byte(s)); err != ErrID || u != (ID{1}) {
			t.Errorf("UnmarshalText(%q) changed the id or did not fail: %v", s, err)
		}
	}
}
