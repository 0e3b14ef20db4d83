package signer

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// jwk is one public key as RFC 7517 writes it: OKP (RFC 8037) for Ed25519, EC for P-256.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// Published reports whether a signing key's public half is published at now: it is
// active, or retired with tokens it signed possibly still alive (NotAfter after now).
func Published(k store.SigningKey, now time.Time) bool {
	if k.RetiredAt == nil {
		return true
	}
	return k.NotAfter != nil && k.NotAfter.After(now)
}

// JWKS returns the JSON Web Key Set (RFC 7517) of the keys published at now, in the order
// given, as {"keys":[…]} (an empty array when there are none). Ed25519 keys are
// {kty:"OKP",crv:"Ed25519",x} (RFC 8037), P-256 keys {kty:"EC",crv:"P-256",x,y}; each has
// kid, alg and use "sig".
func JWKS(keys []store.SigningKey, now time.Time) ([]byte, error) {
	set := jwkSet{Keys: make([]jwk, 0, len(keys))}
	b64 := base64.RawURLEncoding
	for _, k := range keys {
		if !Published(k, now) {
			continue
		}
		switch k.Alg {
		case store.AlgEdDSA:
			if len(k.Public) != 32 {
				return nil, &Error{Kind: ErrInvalid, Op: "jwks", Source: k.KID, Reason: "Ed25519 public key is not 32 bytes"}
			}
			set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(k.Public),
				Kid: k.KID, Alg: store.AlgEdDSA, Use: "sig"})
		case store.AlgES256:
			if len(k.Public) != 65 || k.Public[0] != 4 {
				return nil, &Error{Kind: ErrInvalid, Op: "jwks", Source: k.KID, Reason: "P-256 public key is not an uncompressed point"}
			}
			set.Keys = append(set.Keys, jwk{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(k.Public[1:33]),
				Y: b64.EncodeToString(k.Public[33:]), Kid: k.KID, Alg: store.AlgES256, Use: "sig"})
		default:
			return nil, &Error{Kind: ErrInvalid, Op: "jwks", Source: k.KID, Reason: "alg must be EdDSA or ES256"}
		}
	}
	return json.Marshal(set)
}
