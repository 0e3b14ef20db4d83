//go:build accel

package verifier

import "github.com/latchkeyhq/latchkey/shared/hostcrypto"

// defaultCrypto: builds tagged accel (the Wasm guest that imports its crypto from the host,
// wasm/verifier) name no default Provider. Referring to hostcrypto.Std would link the standard
// library's SHA-256, Ed25519 and P-256 into a module that never runs them, several times the
// size of everything else. There, Options.Crypto is required.
func defaultCrypto() hostcrypto.Provider {
	panic("verifier: Options.Crypto is required in builds tagged accel")
}
