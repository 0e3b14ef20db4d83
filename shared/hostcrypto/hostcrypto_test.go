package hostcrypto

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

func es256Key(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return k, pub
}

func signES256(t testing.TB, k *ecdsa.PrivateKey, msg []byte) []byte {
	d := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig
}

// TestES256KeyCacheRotation verifies under more keys than the cache holds, twice, so every
// key is parsed again after eviction and a cached key is never confused with another.
func TestES256KeyCacheRotation(t *testing.T) {
	msg := []byte("header.payload")
	type kp struct{ pub, sig []byte }
	var keys []kp
	for i := 0; i < 12; i++ {
		k, pub := es256Key(t)
		keys = append(keys, kp{pub, signES256(t, k, msg)})
	}
	for round := 0; round < 2; round++ {
		for i, k := range keys {
			if !Std.VerifyES256(k.pub, msg, k.sig) {
				t.Fatalf("round %d key %d: valid signature refused", round, i)
			}
			other := keys[(i+1)%len(keys)]
			if Std.VerifyES256(other.pub, msg, k.sig) {
				t.Fatalf("round %d key %d: signature accepted under another key", round, i)
			}
		}
	}
}

func TestMalformedInputsRefused(t *testing.T) {
	_, pub := es256Key(t)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("m")
	edSig := ed25519.Sign(edPriv, msg)
	offCurve := append([]byte{4}, make([]byte, 64)...)
	cases := []struct {
		name string
		ok   bool
	}{
		{"es256 short key", Std.VerifyES256(pub[:64], msg, make([]byte, 64))},
		{"es256 compressed prefix", Std.VerifyES256(append([]byte{2}, pub[1:]...), msg, make([]byte, 64))},
		{"es256 point off curve", Std.VerifyES256(offCurve, msg, make([]byte, 64))},
		{"es256 short sig", Std.VerifyES256(pub, msg, make([]byte, 63))},
		{"es256 zero sig", Std.VerifyES256(pub, msg, make([]byte, 64))},
		{"ed25519 short key", Std.VerifyEd25519(edPub[:31], msg, edSig)},
		{"ed25519 long sig", Std.VerifyEd25519(edPub, msg, append(edSig, 0))},
	}
	for _, c := range cases {
		if c.ok {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if !Std.VerifyEd25519(edPub, msg, edSig) {
		t.Fatal("valid Ed25519 signature refused")
	}
}

func TestDERHighBitAndLeadingZeros(t *testing.T) {
	r := make([]byte, 32)
	r[0] = 0x80
	s := make([]byte, 32)
	s[31] = 1
	der := appendDERSignature(nil, r, s)
	want := append([]byte{0x30, 2 + 33 + 2 + 1, 0x02, 33, 0}, r...)
	want = append(want, 0x02, 1, 1)
	if string(der) != string(want) {
		t.Fatalf("DER = %x, want %x", der, want)
	}
}
