//go:build wasip1 && latchkey_fixedclock

package main

// fixedClockAllowed: this build honours the configuration's now_override (tests only).
const fixedClockAllowed = true
