package config

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

func sample(t testing.TB) *Config {
	t.Helper()
	p256, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Config{
		ManifestKeys: []snapshot.TrustedKey{
			{Alg: snapshot.AlgEd25519, Public: bytes.Repeat([]byte{7}, 32)},
			{Alg: snapshot.AlgES256, Public: p256.PublicKey().Bytes()},
		},
		Snapshot:            &Snapshot{Manifest: []byte("LKMF manifest"), Objects: [][]byte{{1, 2, 3}, {}, {0xff}}, Delta: []byte{9}},
		MaxStalenessSeconds: 3600,
		TokenCacheSize:      -1,
		Refresh: &Refresh{Cluster: "latchkey_snapshots", Authority: "snapshots.example.com:8443", PathPrefix: "/a/b-c.d",
			Realm: "acme", IntervalSeconds: 15, TimeoutMillis: 2500},
		NowOverride: 1790000000 * 1e9,
	}
}

// TestRoundTrip: Parse reads back what Marshal writes, and writing it again gives the same
// bytes.
func TestRoundTrip(t *testing.T) {
	c := sample(t)
	text := Marshal(c)
	got, err := Parse(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("parsed %+v\nwant %+v", got, c)
	}
	if again := Marshal(got); !bytes.Equal(again, text) {
		t.Fatalf("re-encoded %s\nwant %s", again, text)
	}
	minimal := &Config{ManifestKeys: c.ManifestKeys[:1], Refresh: c.Refresh}
	if got, err := Parse(Marshal(minimal)); err != nil || !reflect.DeepEqual(got, minimal) {
		t.Fatalf("minimal: %+v, %v", got, err)
	}
}

func TestDefaultsAndEscapes(t *testing.T) {
	key := ManifestKeyText(sample(t).ManifestKeys[0])
	text := `{ "manifest_keys" : [ "` + key + `" ] ,
	  "refresh": {"cluster": "c", "authority": "a", "realm": "r\u0031", "path_prefix": "\/x\u002fy"} }`
	c, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Refresh
	if r.IntervalSeconds != DefaultIntervalSeconds || r.TimeoutMillis != DefaultTimeoutMillis || r.Realm != "r1" || r.PathPrefix != "/x/y" {
		t.Fatalf("%+v", r)
	}
	if r.ManifestPath() != "/x/y/r1/manifest" || r.ObjectPath("v1-meta") != "/x/y/r1/objects/v1-meta" {
		t.Fatal(r.ManifestPath(), r.ObjectPath("v1-meta"))
	}
	c, err = Parse([]byte(`{"manifest_keys":["` + key + `"],"refresh":{"cluster":"c","authority":"a","realm":"r","path_prefix":"/"}}`))
	if err != nil || c.Refresh.ManifestPath() != "/r/manifest" {
		t.Fatalf("%v %+v", err, c)
	}
}

// TestParseErrors: every refusal names the member and the cause, and matches ErrInvalid.
func TestParseErrors(t *testing.T) {
	key := ManifestKeyText(sample(t).ManifestKeys[0])
	keys := `"manifest_keys":["` + key + `"]`
	refresh := func(members string) string {
		return `{` + keys + `,"refresh":{"cluster":"c","authority":"a","realm":"r"` + members + `}}`
	}
	for _, c := range []struct{ text, want string }{
		{``, "want a JSON object"},
		{`[]`, "want a JSON object"},
		{`{}`, "manifest_keys: required"},
		{`{` + keys + `}`, `"snapshot", "refresh" or both are required`},
		{`{` + keys + `} x`, "text after the configuration object"},
		{`{` + keys + `,` + keys + `}`, "manifest_keys: member repeated"},
		{`{"manifest_keys":["ed25519:AA"]}`, "manifest_keys[0]: an Ed25519 public key is 32 bytes"},
		{`{"manifest_keys":"` + key + `"}`, "manifest_keys: want a JSON array"},
		{`{"manifest_keys":[` + strings.Repeat(`"`+key+`",`, 16) + `"` + key + `"]}`, "manifest_keys: more than 16 keys"},
		{`{` + keys + `,"snapshot":{"manifest":"AAAA"}}`, "snapshot.objects: required"},
		{`{` + keys + `,"snapshot":{"objects":["AAAA"]}}`, "snapshot.manifest: required"},
		{`{` + keys + `,"snapshot":{"manifest":"AAA","objects":["AAAA"]}}`, "snapshot.manifest: not standard, padded base64"},
		{`{` + keys + `,"snapshot":{"manifest":"AAAA","objects":["AAAA"],"extra":1}}`, "snapshot.extra: unknown member"},
		{`{` + keys + `,"max_staleness_seconds":1.5,"refresh":{}}`, "max_staleness_seconds: must be an integer"},
		{`{` + keys + `,"max_staleness_seconds":-1}`, "max_staleness_seconds: must be in 0.."},
		{`{` + keys + `,"max_staleness_seconds":01}`, "max_staleness_seconds: leading zero"},
		{`{` + keys + `,"max_staleness_seconds":99999999999999999999}`, "max_staleness_seconds: out of range"},
		{`{` + keys + `,"token_cache_size":-2}`, "token_cache_size: must be in -1.."},
		{`{` + keys + `,"token_cache_size":true}`, "token_cache_size: want an integer"},
		{`{` + keys + `,"now_override":null}`, "now_override: want an integer"},
		{refresh(`,"realm":"s"`), "refresh.realm: member repeated"},
		{`{` + keys + `,"refresh":{"authority":"a","realm":"r"}}`, "refresh.cluster: required"},
		{refresh(`,"path_prefix":"latchkey"`), "refresh.path_prefix: must be"},
		{refresh(`,"path_prefix":"/a/../b"`), "refresh.path_prefix: must be"},
		{refresh(`,"path_prefix":"/a/"`), "refresh.path_prefix: must be"},
		{`{` + keys + `,"refresh":{"cluster":"c","authority":"a","realm":"../x"}}`, "refresh.realm: must be a realm name"},
		{`{` + keys + `,"refresh":{"cluster":"c d","authority":"a","realm":"r"}}`, "refresh.cluster: must be a cluster name"},
		{refresh(`,"interval_seconds":0`), "refresh.interval_seconds: must be in 1..86400"},
		{refresh(`,"timeout_ms":60001`), "refresh.timeout_ms: must be in 1..60000"},
		{refresh(`,"timeout":1`), "refresh.timeout: unknown member"},
		{`{` + keys + `,"refresh":{"cluster":"\ud800","authority":"a","realm":"r"}}`, "refresh.cluster: unpaired surrogate"},
		{`{` + keys + `,"refresh":{"cluster":"c` + "\x01" + `","authority":"a","realm":"r"}}`, "refresh.cluster: control character"},
		{`{` + keys + `,"refresh":{"cluster":"` + "\xff" + `","authority":"a","realm":"r"}}`, "refresh.cluster: string is not valid UTF-8"},
		{`{` + keys + `,"refresh":{"cluster":"c\q","authority":"a","realm":"r"}}`, "refresh.cluster: unknown escape"},
		{`{` + keys + `,"refresh":{"cluster":"c`, "refresh.cluster: unterminated string"},
	} {
		got, err := Parse([]byte(c.text))
		if err == nil || got != nil {
			t.Errorf("%s: accepted", c.text)
			continue
		}
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n  %v\n  want %q", c.text, err, c.want)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts is written back by Marshal as text that
// parses to the same configuration.
func FuzzParse(f *testing.F) {
	f.Add(Marshal(sample(f)))
	f.Add(Marshal(&Config{ManifestKeys: sample(f).ManifestKeys[:1], Refresh: sample(f).Refresh}))
	f.Add([]byte(`{"manifest_keys":["ed25519:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"],"refresh":{"cluster":"\u0063","authority":"a","realm":"r"}}`))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := Parse(text)
		if err != nil {
			if c != nil {
				t.Fatal("a configuration returned with an error")
			}
			return
		}
		again, err := Parse(Marshal(c))
		if err != nil {
			t.Fatalf("Marshal wrote what Parse refuses: %v\n%s", err, Marshal(c))
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed the configuration:\n%+v\n%+v", c, again)
		}
	})
}
