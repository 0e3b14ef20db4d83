package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

func sample() *Config {
	return &Config{MaxStalenessSeconds: 600, TokenCacheSize: -1, NowOverride: 1789000000e9, Load: abi.Load{
		Trusted:  []snapshot.TrustedKey{{Alg: snapshot.AlgEd25519, Public: bytes.Repeat([]byte{1}, 32)}},
		Manifest: []byte("manifest"), Objects: [][]byte{[]byte("meta"), []byte("shard")},
	}}
}

// TestForms: the binary encoding, its base64 text and a JSON object holding that text in
// "config" all decode to the same configuration.
func TestForms(t *testing.T) {
	c := sample()
	bin, err := Append(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	text, err := Text(c)
	if err != nil {
		t.Fatal(err)
	}
	slashed := bytes.ReplaceAll([]byte(text), []byte("/"), []byte(`\/`))
	for name, in := range map[string][]byte{
		"binary":             bin,
		"base64":             []byte(" " + text + "\n"),
		"json":               []byte(`{"other": 1, "x": "y", "config": "` + text + `", "flag": true}`),
		"json-escaped-slash": append(append([]byte(`{"config":"`), slashed...), `"}`...),
	} {
		var got Config
		if err := Decode(in, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, err := Append(nil, &got)
		if err != nil || !bytes.Equal(again, bin) {
			t.Fatalf("%s: decoded configuration differs (%v)", name, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	bin, _ := Append(nil, sample())
	ver := append([]byte(nil), bin...)
	ver[4] = 2
	reserved := append([]byte(nil), bin...)
	reserved[5] = 1
	for name, in := range map[string][]byte{
		"empty":        nil,
		"short":        bin[:10],
		"reserved":     reserved,
		"trailing":     append(append([]byte(nil), bin...), 0),
		"not base64":   []byte("LKH?"),
		"base64 other": []byte(base64.StdEncoding.EncodeToString([]byte("hello world"))),
		"json nested":  []byte(`{"a": {"b": 1}, "config": "x"}`),
		"json missing": []byte(`{"a": "b"}`),
		"json escape":  []byte(`{"config": "\u0041"}`),
		"json open":    []byte(`{"config": "abc`),
		"json empty":   []byte(`{}`),
	} {
		var c Config
		if err := Decode(in, &c); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	var c Config
	if err := Decode(ver, &c); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2: %v", err)
	}
}
