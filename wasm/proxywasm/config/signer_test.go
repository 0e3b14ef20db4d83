//go:build !wasip1

// controlplane/signer does not build for Wasm (it reaches SQLite through the key store).

package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
)

// TestManifestKeyText: keys are written as the control plane writes them
// (signer.TrustedText), and read as latchkey-edge reads them (signer.ParseTrustedKey).
func TestManifestKeyText(t *testing.T) {
	for _, k := range sample(t).ManifestKeys {
		text := ManifestKeyText(k)
		if want := signer.TrustedText(k); text != want {
			t.Fatalf("%s, control plane writes %s", text, want)
		}
		want, err := signer.ParseTrustedKey(text)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseManifestKey(text)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%+v, %v; want %+v", got, err, want)
		}
	}
	for _, bad := range []string{"", "ed25519:", "ed25519:AAAA", "rsa:AAAA", "ed25519:" + strings.Repeat("A", 43) + "=",
		"es256:" + strings.Repeat("A", 87)} {
		if _, err := ParseManifestKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
		if _, err := signer.ParseTrustedKey(bad); err == nil {
			t.Errorf("the control plane accepts %q", bad)
		}
	}
}
