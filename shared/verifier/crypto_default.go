//go:build !accel

package verifier

import "github.com/latchkeyhq/latchkey/shared/hostcrypto"

// defaultCrypto is the Provider of an Engine whose Options name none: the standard library's.
func defaultCrypto() hostcrypto.Provider { return hostcrypto.Std }
