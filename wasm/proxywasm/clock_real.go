//go:build wasip1 && !latchkey_fixedclock

package main

// fixedClockAllowed: release builds refuse a configuration with now_override.
const fixedClockAllowed = false
