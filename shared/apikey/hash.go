package apikey

import (
	"encoding/hex"
	"errors"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
)

// Hash is the SHA-256 of a full key string, prefix included. It is the only form in which
// a key is stored or published.
type Hash [32]byte

// IDSize is the length of a key ID in bytes: a prefix of the key's Hash.
const IDSize = 10

// idPrefix starts the text form of every key ID.
const idPrefix = "key_"

// Lengths of the text forms.
const (
	hashTextLen = 2 * len(Hash{})
	idTextLen   = len(idPrefix) + 2*IDSize
)

var (
	// ErrHash reports a malformed hash text.
	ErrHash = errors.New("apikey: hash must be 64 lowercase hex characters")
	// ErrID reports a malformed key ID text.
	ErrID = errors.New("apikey: key id must be \"key_\" followed by 20 lowercase hex characters")
)

// HashOf hashes a full key string with p.
func HashOf(p hostcrypto.Provider, key []byte) Hash { return Hash(p.SHA256(key)) }

// ParseHash parses the lowercase hex form of a Hash. Uppercase hex is refused so that
// every Hash has exactly one text form.
func ParseHash(s string) (Hash, error) { return parseHash(s) }

func parseHash[T string | []byte](s T) (Hash, error) {
	var h Hash
	if len(s) != hashTextLen || !allIn(s, classLowerHex) {
		return Hash{}, ErrHash
	}
	decodeLowerHex(h[:], s)
	return h, nil
}

// String returns the lowercase hex form.
func (h Hash) String() string {
	var buf [hashTextLen]byte
	return string(hex.AppendEncode(buf[:0], h[:]))
}

// AppendText appends the lowercase hex form to dst; it does not allocate when dst has room.
func (h Hash) AppendText(dst []byte) ([]byte, error) { return hex.AppendEncode(dst, h[:]), nil }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return h.AppendText(make([]byte, 0, hashTextLen)) }

// UnmarshalText implements encoding.TextUnmarshaler. On error *h is left unchanged.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := parseHash(b)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ID returns the public ID of the key with this hash.
func (h Hash) ID() ID {
	var id ID
	copy(id[:], h[:IDSize])
	return id
}

// ID is a key's public identifier: the first 10 bytes of its Hash. Deriving it from the hash
// means the edge needs no per-key ID column, and finding a key by ID (to check the key that
// minted a client token) is a prefix search in the same sorted table. 80 bits keep
// accidental collisions out of reach (about 2^40 keys for even odds); the control plane
// still refuses to issue a key whose ID is taken.
type ID [IDSize]byte

// String returns "key_" followed by 20 lowercase hex characters.
func (id ID) String() string {
	var buf [idTextLen]byte
	b, _ := id.AppendText(buf[:0])
	return string(b)
}

// AppendText appends the text form to dst; it does not allocate when dst has room.
func (id ID) AppendText(dst []byte) ([]byte, error) {
	dst = append(dst, idPrefix...)
	return hex.AppendEncode(dst, id[:]), nil
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return id.AppendText(make([]byte, 0, idTextLen)) }

// UnmarshalText implements encoding.TextUnmarshaler. On error *id is left unchanged.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseIDBytes(b)
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseID parses the text form of an ID. Uppercase hex is refused so that every ID has
// exactly one text form.
func ParseID(s string) (ID, error) { return parseID(s) }

// ParseIDBytes parses the text form of an ID without allocating.
func ParseIDBytes(b []byte) (ID, error) { return parseID(b) }

func parseID[T string | []byte](s T) (ID, error) {
	var id ID
	if len(s) != idTextLen || !allIn(s[len(idPrefix):], classLowerHex) {
		return ID{}, ErrID
	}
	// Byte by byte: string(s[:4]) would allocate under TinyGo when T is []byte.
	for i := 0; i < len(idPrefix); i++ {
		if s[i] != idPrefix[i] {
			return ID{}, ErrID
		}
	}
	decodeLowerHex(id[:], s[len(idPrefix):])
	return id, nil
}

// decodeLowerHex decodes src, already checked to be lowercase hex of length 2*len(dst).
// It exists because hex.Decode takes only []byte and converting a string would allocate.
func decodeLowerHex[T string | []byte](dst []byte, src T) {
	for i := range dst {
		dst[i] = lowerHexVal(src[2*i])<<4 | lowerHexVal(src[2*i+1])
	}
}

func lowerHexVal(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}
