// Package config is the plugin configuration of the proxy-wasm filter (wasm/proxywasm): the
// JSON text Envoy hands the plugin (the filter's `configuration`, a StringValue), holding the
// pinned manifest keys, an optional initial snapshot, the engine options and where to fetch
// newer snapshots. It parses without reflection and without fmt, so that the TinyGo guest
// (-scheduler=none) carries it; Marshal writes the same text for tools and tests.
//
// The format, every member optional unless marked:
//
//	{
//	  "manifest_keys": ["ed25519:<base64url>", …],   required, 1..16 pinned keys
//	  "snapshot": {                                   required unless "refresh" is set
//	    "manifest": "<base64>",                       the signed manifest, as published
//	    "objects": ["<base64>", …],                   its objects, in manifest order
//	    "delta": "<base64>"                           the delta, when the manifest names one
//	  },
//	  "max_staleness_seconds": 3600,                  0: no limit
//	  "token_cache_size": 4096,                       0: default (4096); -1: disabled
//	  "refresh": {
//	    "cluster": "latchkey_snapshots",              required: the Envoy cluster of the store
//	    "authority": "snapshots.example.com",         required: the :authority sent
//	    "path_prefix": "/latchkey",                   "" or "/"-separated segments
//	    "realm": "acme",                              required
//	    "interval_seconds": 30,                       1..86400, default 30
//	    "timeout_ms": 5000                            1..60000, default 5000
//	  },
//	  "now_override": 0                               Unix ns; tests only (see the guest)
//	}
//
// Manifest keys are written as latchkey-edge's --trusted-key and signer.TrustedText write
// them: "ed25519:" or "es256:" and the public key in unpadded base64url. Snapshot bytes are
// standard base64 with padding (`base64 -w0 manifest`). Unknown or repeated members, numbers
// that are not integers and strings that are not valid UTF-8 are refused: a typo in a
// security setting must not be silently ignored.
package config

import (
	"encoding/base64"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// Bounds and defaults of the numeric members.
const (
	MaxManifestKeys        = 16
	DefaultIntervalSeconds = 30
	MaxIntervalSeconds     = 86400
	DefaultTimeoutMillis   = 5000
	MaxTimeoutMillis       = 60000
	// MaxConfigBytes bounds the configuration text: an initial snapshot of the largest size
	// a manifest may name would not fit in a proxy's configuration anyway.
	MaxConfigBytes = 64 << 20
)

// Text prefixes of a pinned manifest key (controlplane/signer.TrustedPrefix…).
const (
	prefixEd25519 = "ed25519:"
	prefixES256   = "es256:"
)

// Config is the plugin configuration.
type Config struct {
	// ManifestKeys are the pinned manifest-signing keys: every manifest, the initial one and
	// each one fetched, must verify under one of them.
	ManifestKeys []snapshot.TrustedKey
	// Snapshot is the snapshot to serve from the start; nil to wait for the first refresh
	// (every request is denied 503 until one loads).
	Snapshot *Snapshot
	// MaxStalenessSeconds: once the held snapshot was issued longer ago, every request is
	// denied 503 (verifier.Options.MaxStalenessSeconds); 0 is no limit.
	MaxStalenessSeconds int64
	// TokenCacheSize is verifier.Options.TokenCacheSize: 0 the default, negative disables.
	TokenCacheSize int
	// Refresh says where newer snapshots are fetched from; nil: never.
	Refresh *Refresh
	// NowOverride fixes the guest's clock (Unix ns) for tests; 0 is the real clock.
	NowOverride int64
}

// Snapshot is a snapshot as the control plane publishes it.
type Snapshot struct {
	Manifest []byte
	// Objects are in manifest order.
	Objects [][]byte
	// Delta is nil when the manifest names none.
	Delta []byte
}

// Refresh configures fetching snapshots from a store laid out as controlplane/publisher
// writes it (edge/sync reads the same layout): <path_prefix>/<realm>/manifest and
// <path_prefix>/<realm>/objects/<name>.
type Refresh struct {
	// Cluster is the Envoy cluster the filter sends its requests to (dispatch_http_call).
	Cluster string
	// Authority is the :authority (Host) of those requests.
	Authority string
	// PathPrefix is "" or "/" followed by "/"-separated segments, without a trailing "/".
	PathPrefix string
	// Realm is the realm served: a manifest of another realm is refused.
	Realm           string
	IntervalSeconds int64
	TimeoutMillis   int64
}

// ManifestPath is the request path of the realm's manifest.
func (r *Refresh) ManifestPath() string { return r.PathPrefix + "/" + r.Realm + "/manifest" }

// ObjectPath is the request path of the object named name.
func (r *Refresh) ObjectPath(name string) string {
	return r.PathPrefix + "/" + r.Realm + "/objects/" + name
}

// ErrInvalid is the sentinel every configuration error wraps.
var ErrInvalid = errors.New("proxywasm config: invalid")

// FieldError names what is wrong and where.
type FieldError struct {
	// Field is the member's path ("refresh.realm", "manifest_keys[1]"); "" for the text as
	// a whole.
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "proxywasm config: " + e.Reason
	}
	return "proxywasm config: " + e.Field + ": " + e.Reason
}

func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalid(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// Parse parses the configuration text. On error it returns nil and a *FieldError.
func Parse(text []byte) (*Config, error) {
	if len(text) > MaxConfigBytes {
		return nil, invalid("", "larger than "+strconv.Itoa(MaxConfigBytes)+" bytes")
	}
	p := &parser{b: text}
	c := &Config{}
	seen := 0
	err := p.object("", func(key string) error {
		switch key {
		case "manifest_keys":
			return p.once(&seen, 1, key, func() error { return p.keys(c) })
		case "snapshot":
			return p.once(&seen, 2, key, func() error { return p.snapshot(c) })
		case "max_staleness_seconds":
			return p.once(&seen, 4, key, func() error {
				var err error
				c.MaxStalenessSeconds, err = p.integer(key, 0, 1<<40)
				return err
			})
		case "token_cache_size":
			return p.once(&seen, 8, key, func() error {
				n, err := p.integer(key, -1, 1<<24)
				c.TokenCacheSize = int(n)
				return err
			})
		case "refresh":
			return p.once(&seen, 16, key, func() error { return p.refresh(c) })
		case "now_override":
			return p.once(&seen, 32, key, func() error {
				var err error
				c.NowOverride, err = p.integer(key, 0, 1<<62)
				return err
			})
		}
		return invalid(key, "unknown member")
	})
	if err != nil {
		return nil, err
	}
	if p.space(); p.i != len(p.b) {
		return nil, p.syntax("", "text after the configuration object")
	}
	if len(c.ManifestKeys) == 0 {
		return nil, invalid("manifest_keys", "required: at least one pinned manifest key")
	}
	if c.Snapshot == nil && c.Refresh == nil {
		return nil, invalid("", `"snapshot", "refresh" or both are required`)
	}
	return c, nil
}

func (p *parser) keys(c *Config) error {
	const field = "manifest_keys"
	return p.array(field, func(i int) error {
		f := field + "[" + strconv.Itoa(i) + "]"
		if i >= MaxManifestKeys {
			return invalid(field, "more than "+strconv.Itoa(MaxManifestKeys)+" keys")
		}
		s, err := p.str(f)
		if err != nil {
			return err
		}
		k, err := ParseManifestKey(s)
		if err != nil {
			return invalid(f, err.Error())
		}
		c.ManifestKeys = append(c.ManifestKeys, k)
		return nil
	})
}

// ParseManifestKey parses a pinned manifest key: "ed25519:" and 32 bytes, or "es256:" and a
// 65-byte uncompressed P-256 point, in unpadded base64url (as controlplane/signer writes it).
// A point off the curve is not refused here: no signature ever verifies under it.
func ParseManifestKey(s string) (snapshot.TrustedKey, error) {
	var alg uint8
	var rest string
	switch {
	case len(s) > len(prefixEd25519) && s[:len(prefixEd25519)] == prefixEd25519:
		alg, rest = snapshot.AlgEd25519, s[len(prefixEd25519):]
	case len(s) > len(prefixES256) && s[:len(prefixES256)] == prefixES256:
		alg, rest = snapshot.AlgES256, s[len(prefixES256):]
	default:
		return snapshot.TrustedKey{}, errors.New(`want "ed25519:<base64url>" or "es256:<base64url>"`)
	}
	pub, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return snapshot.TrustedKey{}, errors.New("public key is not unpadded base64url")
	}
	switch {
	case alg == snapshot.AlgEd25519 && len(pub) != 32:
		return snapshot.TrustedKey{}, errors.New("an Ed25519 public key is 32 bytes")
	case alg == snapshot.AlgES256 && (len(pub) != 65 || pub[0] != 4):
		return snapshot.TrustedKey{}, errors.New("a P-256 public key is a 65-byte uncompressed point")
	}
	return snapshot.TrustedKey{Alg: alg, Public: pub}, nil
}

// ManifestKeyText formats k the way ParseManifestKey reads it.
func ManifestKeyText(k snapshot.TrustedKey) string {
	prefix := prefixEd25519
	if k.Alg == snapshot.AlgES256 {
		prefix = prefixES256
	}
	return prefix + base64.RawURLEncoding.EncodeToString(k.Public)
}

func (p *parser) snapshot(c *Config) error {
	s := &Snapshot{}
	seen := 0
	err := p.object("snapshot", func(key string) error {
		f := "snapshot." + key
		switch key {
		case "manifest":
			return p.once(&seen, 1, f, func() error {
				var err error
				s.Manifest, err = p.base64(f, limits.MaxManifestBytes)
				return err
			})
		case "objects":
			return p.once(&seen, 2, f, func() error {
				return p.array(f, func(i int) error {
					if i >= limits.MaxManifestObjects {
						return invalid(f, "more than "+strconv.Itoa(limits.MaxManifestObjects)+" objects")
					}
					o, err := p.base64(f+"["+strconv.Itoa(i)+"]", limits.MaxSnapshotObjectBytes)
					s.Objects = append(s.Objects, o)
					return err
				})
			})
		case "delta":
			return p.once(&seen, 4, f, func() error {
				var err error
				s.Delta, err = p.base64(f, limits.MaxSnapshotObjectBytes)
				return err
			})
		}
		return invalid(f, "unknown member")
	})
	if err != nil {
		return err
	}
	switch {
	case s.Manifest == nil:
		return invalid("snapshot.manifest", "required")
	case len(s.Objects) == 0:
		return invalid("snapshot.objects", "required: the manifest's objects, in manifest order")
	}
	c.Snapshot = s
	return nil
}

func (p *parser) refresh(c *Config) error {
	r := &Refresh{IntervalSeconds: DefaultIntervalSeconds, TimeoutMillis: DefaultTimeoutMillis}
	seen := 0
	err := p.object("refresh", func(key string) error {
		f := "refresh." + key
		var err error
		switch key {
		case "cluster":
			return p.once(&seen, 1, f, func() error {
				if r.Cluster, err = p.str(f); err == nil && (r.Cluster == "" || !printable(r.Cluster)) {
					err = invalid(f, "must be a cluster name (printable ASCII)")
				}
				return err
			})
		case "authority":
			return p.once(&seen, 2, f, func() error {
				if r.Authority, err = p.str(f); err == nil && (r.Authority == "" || !printable(r.Authority)) {
					err = invalid(f, "must be a host name, with an optional port")
				}
				return err
			})
		case "path_prefix":
			return p.once(&seen, 4, f, func() error {
				if r.PathPrefix, err = p.str(f); err == nil && !validPrefix(r.PathPrefix) {
					err = invalid(f, `must be "" or "/"-separated segments of [A-Za-z0-9._-] not starting with '.', like "/latchkey"`)
				}
				return err
			})
		case "realm":
			return p.once(&seen, 8, f, func() error {
				if r.Realm, err = p.str(f); err == nil && !validSegment(r.Realm) {
					err = invalid(f, "must be a realm name: [A-Za-z0-9._-], not starting with '.'")
				}
				return err
			})
		case "interval_seconds":
			return p.once(&seen, 16, f, func() error {
				r.IntervalSeconds, err = p.integer(f, 1, MaxIntervalSeconds)
				return err
			})
		case "timeout_ms":
			return p.once(&seen, 32, f, func() error {
				r.TimeoutMillis, err = p.integer(f, 1, MaxTimeoutMillis)
				return err
			})
		}
		return invalid(f, "unknown member")
	})
	if err != nil {
		return err
	}
	for _, m := range [...]struct{ name, v string }{{"cluster", r.Cluster}, {"authority", r.Authority}, {"realm", r.Realm}} {
		if m.v == "" {
			return invalid("refresh."+m.name, "required")
		}
	}
	if r.PathPrefix == "/" {
		r.PathPrefix = ""
	}
	c.Refresh = r
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validSegment accepts what controlplane/publisher and edge/sync accept as one name segment.
func validSegment(s string) bool {
	if s == "" || len(s) > 255 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validPrefix(s string) bool {
	if s == "" || s == "/" {
		return true
	}
	if s[0] != '/' || len(s) > 1024 {
		return false
	}
	for rest := s[1:]; ; {
		seg := rest
		i := indexByte(rest, '/')
		if i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		}
		if !validSegment(seg) {
			return false
		}
		if i < 0 {
			return true
		}
	}
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// parser reads the JSON subset the configuration uses: objects, arrays, strings and integers
// (true, false and null appear nowhere in the format and are refused as values).
type parser struct {
	b []byte
	i int
}

func (p *parser) syntax(field, reason string) error {
	where := "at byte " + strconv.Itoa(p.i)
	if field != "" {
		return invalid(field, reason+" ("+where+")")
	}
	return invalid("", reason+" ("+where+")")
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) eat(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// once runs parse for a member unless bit says it was seen already.
func (p *parser) once(seen *int, bit int, field string, parse func() error) error {
	if *seen&bit != 0 {
		return invalid(field, "member repeated")
	}
	*seen |= bit
	return parse()
}

// object reads an object, calling member with each key once the parser stands on its value.
func (p *parser) object(field string, member func(key string) error) error {
	if !p.eat('{') {
		return p.syntax(field, "want a JSON object")
	}
	if p.eat('}') {
		return nil
	}
	for {
		p.space()
		key, err := p.str(field)
		if err != nil {
			return err
		}
		if !p.eat(':') {
			return p.syntax(field, "want ':' after a member name")
		}
		if err := member(key); err != nil {
			return err
		}
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return nil
		}
		return p.syntax(field, "want ',' or '}'")
	}
}

// array reads an array, calling elem with each index once the parser stands on the element.
func (p *parser) array(field string, elem func(i int) error) error {
	if !p.eat('[') {
		return p.syntax(field, "want a JSON array")
	}
	if p.eat(']') {
		return nil
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return err
		}
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			return nil
		}
		return p.syntax(field, "want ',' or ']'")
	}
}

// str reads a JSON string: every escape of RFC 8259, valid UTF-8 only.
func (p *parser) str(field string) (string, error) {
	if !p.eat('"') {
		return "", p.syntax(field, "want a string")
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return "", invalid(field, "string is not valid UTF-8")
			}
			return string(s), nil
		case c == '\\':
			return p.escaped(field, start)
		case c < 0x20:
			return "", p.syntax(field, "control character in a string")
		}
		p.i++
	}
	return "", p.syntax(field, "unterminated string")
}

// escaped finishes a string that holds escapes, from its first byte at start.
func (p *parser) escaped(field string, start int) (string, error) {
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return "", invalid(field, "string is not valid UTF-8")
			}
			return string(out), nil
		case c < 0x20:
			return "", p.syntax(field, "control character in a string")
		case c != '\\':
			out = append(out, c)
			continue
		}
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.syntax(field, `bad \u escape`)
			}
			if 0xd800 <= r && r < 0xdc00 {
				// A high surrogate must pair with a low one.
				if p.i+1 >= len(p.b) || p.b[p.i] != '\\' || p.b[p.i+1] != 'u' {
					return "", p.syntax(field, "unpaired surrogate")
				}
				p.i += 2
				lo, ok := p.hex4()
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return "", p.syntax(field, "unpaired surrogate")
				}
				r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
			} else if 0xdc00 <= r && r <= 0xdfff {
				return "", p.syntax(field, "unpaired surrogate")
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.syntax(field, "unknown escape")
		}
	}
	return "", p.syntax(field, "unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	p.i += 4
	return r, true
}

// integer reads a JSON number that is an integer in [lo, hi].
func (p *parser) integer(field string, lo, hi int64) (int64, error) {
	p.space()
	start := p.i
	neg := p.i < len(p.b) && p.b[p.i] == '-'
	if neg {
		p.i++
	}
	digits := p.i
	var n int64
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		if n > (1<<62)/10 {
			return 0, invalid(field, "out of range")
		}
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	switch {
	case p.i == digits:
		p.i = start
		return 0, p.syntax(field, "want an integer")
	case p.b[digits] == '0' && p.i-digits > 1:
		return 0, p.syntax(field, "leading zero")
	case p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E'):
		return 0, invalid(field, "must be an integer")
	}
	if neg {
		n = -n
	}
	if n < lo || n > hi {
		return 0, invalid(field, "must be in "+strconv.FormatInt(lo, 10)+".."+strconv.FormatInt(hi, 10))
	}
	return n, nil
}

// base64 reads a string of standard, padded base64 holding at most max bytes.
func (p *parser) base64(field string, max int) ([]byte, error) {
	s, err := p.str(field)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.DecodedLen(len(s)) > max+2 {
		return nil, invalid(field, "more than "+strconv.Itoa(max)+" bytes")
	}
	out, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, invalid(field, "not standard, padded base64")
	}
	if len(out) > max {
		return nil, invalid(field, "more than "+strconv.Itoa(max)+" bytes")
	}
	return out, nil
}

// Marshal returns c as configuration text that Parse reads back to c. It checks nothing
// Parse would refuse: parse the result to validate it.
func Marshal(c *Config) []byte {
	b := []byte(`{"manifest_keys":[`)
	for i, k := range c.ManifestKeys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, ManifestKeyText(k))
	}
	b = append(b, ']')
	if s := c.Snapshot; s != nil {
		b = append(b, `,"snapshot":{"manifest":`...)
		b = appendBase64(b, s.Manifest)
		b = append(b, `,"objects":[`...)
		for i, o := range s.Objects {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendBase64(b, o)
		}
		b = append(b, ']')
		if s.Delta != nil {
			b = append(b, `,"delta":`...)
			b = appendBase64(b, s.Delta)
		}
		b = append(b, '}')
	}
	if c.MaxStalenessSeconds != 0 {
		b = strconv.AppendInt(append(b, `,"max_staleness_seconds":`...), c.MaxStalenessSeconds, 10)
	}
	if c.TokenCacheSize != 0 {
		b = strconv.AppendInt(append(b, `,"token_cache_size":`...), int64(c.TokenCacheSize), 10)
	}
	if r := c.Refresh; r != nil {
		b = appendString(append(b, `,"refresh":{"cluster":`...), r.Cluster)
		b = appendString(append(b, `,"authority":`...), r.Authority)
		if r.PathPrefix != "" {
			b = appendString(append(b, `,"path_prefix":`...), r.PathPrefix)
		}
		b = appendString(append(b, `,"realm":`...), r.Realm)
		b = strconv.AppendInt(append(b, `,"interval_seconds":`...), r.IntervalSeconds, 10)
		b = strconv.AppendInt(append(b, `,"timeout_ms":`...), r.TimeoutMillis, 10)
		b = append(b, '}')
	}
	if c.NowOverride != 0 {
		b = strconv.AppendInt(append(b, `,"now_override":`...), c.NowOverride, 10)
	}
	return append(b, '}')
}

func appendBase64(b, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendString writes s as a JSON string, escaping what JSON requires.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
