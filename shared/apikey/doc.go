// Package apikey defines latchkey's API key formats: how a key type's keys look, how a
// presented key is checked (prefix, length, alphabet, checksum) before any lookup, and how
// a key is identified once issued — only by the SHA-256 Hash of its full text and the
// public ID derived from that hash. A plaintext key is a Key, a value that redacts itself
// whenever it is printed.
package apikey
