// Package config is the guest configuration of the http-wasm guest (wasm/httpwasm): the
// signed snapshot it decides from and the engine options, as the bytes an http-wasm host hands
// the guest through get_config.
//
// The binary encoding is little-endian:
//
//	"LKHW"  magic (4 bytes)
//	1       version (1 byte)
//	0       reserved (1 byte, must be 0)
//	int64   max_staleness_seconds (0: no limit; see verifier.Options.MaxStalenessSeconds)
//	int32   token_cache_size (0: default, < 0: disabled)
//	int64   now_override, Unix nanoseconds (0: the guest's clock). A testing knob: only
//	        guests built with the tag latchkey_fixedclock honour it; every other build refuses
//	        a configuration that sets it.
//	...     the rest is an abi.Load encoding (wasm/verifier/ABI.md); its Now is ignored, the
//	        guest loads at its own clock.
//
// Hosts configure plugins with text, so Decode also accepts that encoding in standard base64
// (Dapr's guestConfig), and a JSON object whose "config" member is that base64 string (a
// Traefik plugin's configuration, which Traefik hands the guest as JSON). The package uses no
// fmt and no reflection: the guest (TinyGo, -scheduler=none) imports it.
package config

import (
	"encoding/base64"
	"encoding/binary"
	"errors"

	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// Magic starts every binary configuration.
const Magic = "LKHW"

// Version is the encoding's version byte.
const Version = 1

const headerLen = 4 + 1 + 1 + 8 + 4 + 8

// Config is the guest's configuration.
type Config struct {
	MaxStalenessSeconds int64
	TokenCacheSize      int32
	// NowOverride fixes the guest's clock (Unix nanoseconds) for tests; 0 uses the real clock.
	NowOverride int64
	// Load carries the pinned keys, the signed manifest, the objects and the delta. Load.Now
	// is not used.
	Load abi.Load
}

var (
	// ErrMalformed: the configuration is not a valid encoding in any accepted form.
	ErrMalformed = errors.New("httpwasm config: malformed")
	// ErrVersion: a binary configuration of another version.
	ErrVersion = errors.New("httpwasm config: unknown version")
)

// Append appends the binary encoding of c to dst.
func Append(dst []byte, c *Config) ([]byte, error) {
	dst = append(dst, Magic...)
	dst = append(dst, Version, 0)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(c.MaxStalenessSeconds))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(c.TokenCacheSize))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(c.NowOverride))
	return abi.AppendLoad(dst, &c.Load)
}

// Text returns the base64 text form of c (Dapr's guestConfig, Traefik's "config" member).
func Text(c *Config) (string, error) {
	b, err := Append(nil, c)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Decode decodes b in any accepted form into c. Decoded slices may point into b, which must
// then stay unchanged while a snapshot opened from c.Load is in use.
func Decode(b []byte, c *Config) error {
	*c = Config{}
	b = trimSpace(b)
	if len(b) >= len(Magic) && string(b[:len(Magic)]) == Magic {
		return decodeBinary(b, c)
	}
	if len(b) > 0 && b[0] == '{' {
		s, err := jsonConfigMember(b)
		if err != nil {
			return err
		}
		b = s
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(raw, b)
	if err != nil {
		return ErrMalformed
	}
	raw = raw[:n]
	if len(raw) < len(Magic) || string(raw[:len(Magic)]) != Magic {
		return ErrMalformed
	}
	return decodeBinary(raw, c)
}

func decodeBinary(b []byte, c *Config) error {
	if len(b) < headerLen {
		return ErrMalformed
	}
	if b[4] != Version {
		return ErrVersion
	}
	if b[5] != 0 {
		return ErrMalformed
	}
	c.MaxStalenessSeconds = int64(binary.LittleEndian.Uint64(b[6:]))
	c.TokenCacheSize = int32(binary.LittleEndian.Uint32(b[14:]))
	c.NowOverride = int64(binary.LittleEndian.Uint64(b[18:]))
	if c.MaxStalenessSeconds < 0 || c.NowOverride < 0 {
		return ErrMalformed
	}
	if err := abi.DecodeLoad(b[headerLen:], &c.Load); err != nil {
		return err
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// jsonConfigMember returns the value of the string member "config" of a flat JSON object.
// Other members may be strings, numbers, booleans or null; nested values are refused. The
// only escape the value may hold is "\/" (base64 has no other character JSON escapes).
func jsonConfigMember(b []byte) ([]byte, error) {
	p := &scanner{b: b}
	if !p.eat('{') {
		return nil, ErrMalformed
	}
	var found []byte
	if p.eat('}') {
		return nil, ErrMalformed
	}
	for {
		key, ok := p.str()
		if !ok || !p.eat(':') {
			return nil, ErrMalformed
		}
		p.space()
		if p.i < len(p.b) && p.b[p.i] == '"' {
			v, ok := p.str()
			if !ok {
				return nil, ErrMalformed
			}
			if string(key) == "config" {
				found = v
			}
		} else if !p.scalar() {
			return nil, ErrMalformed
		}
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			break
		}
		return nil, ErrMalformed
	}
	if p.space(); p.i != len(p.b) || found == nil {
		return nil, ErrMalformed
	}
	return found, nil
}

type scanner struct {
	b []byte
	i int
}

func (p *scanner) space() {
	for p.i < len(p.b) && isSpace(p.b[p.i]) {
		p.i++
	}
}

func (p *scanner) eat(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a JSON string, unescaping only \/ and refusing other escapes; it returns a copy.
func (p *scanner) str() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	var out []byte
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch {
		case c == '"':
			if out == nil {
				out = []byte{}
			}
			return out, true
		case c == '\\':
			if p.i >= len(p.b) || p.b[p.i] != '/' {
				return nil, false
			}
			out = append(out, '/')
			p.i++
		case c < 0x20:
			return nil, false
		default:
			out = append(out, c)
		}
	}
	return nil, false
}

// scalar skips a number, true, false or null.
func (p *scanner) scalar() bool {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == ',' || c == '}' || isSpace(c) {
			break
		}
		if c == '{' || c == '[' || c == '"' {
			return false
		}
		p.i++
	}
	return p.i > start
}
