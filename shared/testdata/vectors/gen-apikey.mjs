// Independent (non-Go) implementation of the latchkey API key format, used to cross-check the Go code in shared/apikey.
// Writes apikey.json next to this script from Node built-ins only (zlib.crc32, crypto sha256); Node >= 20.15.
// Run: node shared/testdata/vectors/gen-apikey.mjs [--check]   (--check compares with the file, exits 1 on difference)

import { crc32 } from "node:zlib";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const OUT = new URL("./apikey.json", import.meta.url);

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM_LEN = 6;

// base62 renders a non-negative integer (number or bigint) most significant digit first,
// left-padded with '0' to CHECKSUM_LEN characters.
function base62(n) {
  let v = BigInt(n);
  let s = "";
  do {
    s = ALPHABET[Number(v % 62n)] + s;
    v /= 62n;
  } while (v > 0n);
  return s.padStart(CHECKSUM_LEN, "0");
}

const checksum = (s) => base62(crc32(Buffer.from(s, "utf8")));
const base62Key = (prefix, body) => prefix + body + checksum(prefix + body);
const sha256 = (s) => createHash("sha256").update(s, "utf8").digest("hex");

// replaceAt returns s with the character at index i replaced by c.
const replaceAt = (s, i, c) => s.slice(0, i) + c + s.slice(i + 1);
// swapAt returns s with the characters at i and i+1 swapped.
const swapAt = (s, i) => s.slice(0, i) + s[i + 1] + s[i] + s.slice(i + 2);
// nextDigit returns the base62 digit after c (wrapping).
const nextDigit = (c) => ALPHABET[(ALPHABET.indexOf(c) + 1) % ALPHABET.length];

const vectors = [];
function add(name, prefix, format, key, expect) {
  const v = { name, prefix, format, key, expect };
  if (expect === "ok") {
    v.sha256 = sha256(key);
    v.id = "key_" + v.sha256.slice(0, 20);
  }
  vectors.push(v);
}

// base62crc32: prefix + 30-char body + 6-char base62 CRC32-IEEE of prefix+body.
{
  const f = "base62crc32";
  const P = "tb_";
  const LONG_P = "tb_internal_";
  const body = "1wV8bQ3kZ7pY2xR9mN4cT6hJ0sL5dF";
  const good = base62Key(P, body);
  const goodLong = base62Key(LONG_P, body);
  const crc = crc32(Buffer.from(P + body, "utf8"));

  add("base62/good", P, f, good, "ok");
  add("base62/good_long_prefix", LONG_P, f, goodLong, "ok");
  // A body whose checksum has a leading zero digit.
  add("base62/good_zero_padded_checksum", P, f, base62Key(P, "1wV8bQ3kZ7pY2xR9mN4cT6hJ500xyz"), "ok");
  add("base62/other_prefix", P, f, "tx_" + good.slice(P.length), "prefix");
  add("base62/uppercase_prefix", P, f, good.toUpperCase().slice(0, P.length) + good.slice(P.length), "prefix");
  add("base62/empty", P, f, "", "prefix");
  add("base62/prefix_only", P, f, P, "length");
  add("base62/short", P, f, good.slice(0, -1), "length");
  add("base62/long", P, f, good + "0", "length");
  add("base62/no_checksum", P, f, P + body, "length");
  add("base62/too_long", P, f, good + "a".repeat(200), "length");
  add("base62/underscore", P, f, P + replaceAt(body, 7, "_") + good.slice(P.length + body.length), "alphabet");
  // Same UTF-8 length as good: the last two characters become one two-byte character.
  add("base62/non_ascii", P, f, good.slice(0, -2) + "\u00e9", "alphabet");
  add("base62/one_char_mistyped", P, f, P + replaceAt(body, 7, "X") + checksum(P + body), "checksum");
  add("base62/adjacent_swapped", P, f, P + swapAt(body, 8) + checksum(P + body), "checksum");
  add("base62/checksum_char_changed", P, f, good.slice(0, -1) + nextDigit(good.at(-1)), "checksum");
  add("base62/checksum_over_body_only", P, f, P + body + checksum(body), "checksum");
  add("base62/checksum_plus_2_to_32", P, f, P + body + base62(BigInt(crc) + 2n ** 32n), "checksum");
  add("base62/long_prefix_key_under_short_prefix", P, f, goodLong, "length");
}

// hex64: prefix + 64 lowercase hex digits.
{
  const f = "hex64";
  const P = "tk_";
  const body = "0123456789abcdef".repeat(4);
  const good = P + body;
  add("hex64/good", P, f, good, "ok");
  add("hex64/other_prefix", P, f, "tb_" + body, "prefix");
  add("hex64/short", P, f, good.slice(0, -1), "length");
  add("hex64/long", P, f, good + "0", "length");
  add("hex64/uppercase", P, f, P + body.toUpperCase(), "alphabet");
  add("hex64/one_uppercase", P, f, P + replaceAt(body, 17, "A"), "alphabet");
  add("hex64/not_hex", P, f, P + replaceAt(body, 17, "g"), "alphabet");
}

// opaque: prefix + 16..96 characters of [A-Za-z0-9_-].
{
  const f = "opaque";
  const P = "ap_";
  const body16 = "Ab-_0123456789xy";
  const body96 = "aB3_-z".repeat(16);
  add("opaque/good_16", P, f, P + body16, "ok");
  add("opaque/good_96", P, f, P + body96, "ok");
  add("opaque/other_prefix", P, f, "ak_" + body16, "prefix");
  add("opaque/short", P, f, P + body16.slice(0, -1), "length");
  add("opaque/long", P, f, P + body96 + "a", "length");
  add("opaque/dot", P, f, P + replaceAt(body16, 2, "."), "alphabet");
  add("opaque/base64_padding", P, f, P + body16 + "==", "alphabet");
  add("opaque/space", P, f, P + replaceAt(body16, 2, " "), "alphabet");
}

const doc = {
  description:
    "latchkey API key vectors: Spec{prefix, format}.Check(key) must give expect (ok | prefix | length | alphabet | checksum); for ok keys, sha256 is SHA-256 of the full key as lowercase hex and id its key id.",
  vectors,
};
const text = JSON.stringify(doc, null, 1) + "\n";

if (process.argv.includes("--check")) {
  let have = "";
  try {
    have = readFileSync(OUT, "utf8");
  } catch (e) {
    console.error(`gen-apikey: ${e.message}`);
    process.exit(1);
  }
  if (have !== text) {
    console.error("gen-apikey: apikey.json differs from the generated vectors; run without --check to rewrite it");
    process.exit(1);
  }
  console.log(`gen-apikey: apikey.json is up to date (${vectors.length} vectors)`);
} else {
  writeFileSync(OUT, text);
  console.log(`gen-apikey: wrote apikey.json (${vectors.length} vectors)`);
}
