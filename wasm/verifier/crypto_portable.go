//go:build !accel

package main

//lint:file-ignore U1000 the host reaches this code through //go:wasmexport and //go:wasmimport, which staticcheck does not follow

import "github.com/latchkeyhq/latchkey/shared/hostcrypto"

// provider is the standard library's crypto, compiled into the module.
var provider = hostcrypto.Std
