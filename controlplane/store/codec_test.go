package store

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(cursorKeys, 1700000000000000, testHash(1).ID().String()), true)
	f.Add(encodeCursor(cursorAudit, 42, ""), false)
	f.Add("", false)
	f.Add("!!", true)
	f.Fuzz(func(t *testing.T, c string, wantText bool) {
		for _, kind := range []byte{cursorKeys, cursorAudit, cursorPolicies} {
			n, s, ok := decodeCursor(kind, c, wantText)
			if !ok {
				if n != 0 || s != "" {
					t.Fatalf("a refused cursor returned %d, %q", n, s)
				}
				continue
			}
			// A cursor has one text form: re-encoding gives it back.
			if back := encodeCursor(kind, n, s); back != c {
				t.Fatalf("decode(%q) → (%d, %q) → %q", c, n, s, back)
			}
		}
	})
}

func FuzzDecodeList(f *testing.F) {
	for _, seed := range []string{`[]`, `["a","b"]`, `["a", "b"]`, ` [ "x" ] `, `["q\"x"]`, `["\u00e9"]`,
		`null`, `["a",]`, `["a"`, "[\"\x01\"]", "[\"\xff\"]", `["a"] x`, "\v[\"a\"]"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := decodeList(s)
		var want []string
		if jerr := json.Unmarshal([]byte(s), &want); jerr != nil || want == nil { // nil: "null"
			if err == nil {
				t.Fatalf("decodeList(%q) = %q, but it is no JSON array of strings", s, got)
			}
			return
		}
		if len(want) == 0 {
			want = nil
		}
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("decodeList(%q) = %q, %v; encoding/json reads %q", s, got, err, want)
		}
	})
}

func TestEncodeListRoundTrip(t *testing.T) {
	for _, l := range [][]string{nil, {"a"}, {"tasks:read", "tasks:write"}, {`q"`, `\`, "<&>", "é", "tab\t"}} {
		got, err := decodeList(encodeList(l))
		if err != nil || !slices.Equal(got, l) {
			t.Fatalf("round trip of %q = %q, %v", l, got, err)
		}
	}
}

func TestSQLiteStatement(t *testing.T) {
	ts := time.UnixMicro(1234567).UTC()
	q, args := sqliteStatement(`UPDATE t SET a = $2, b = $10 WHERE c = $1 AND d > $2`,
		[]any{"c", ts, 3, 4, 5, 6, 7, 8, 9, "ten"})
	if q != `UPDATE t SET a = ?, b = ? WHERE c = ? AND d > ?` {
		t.Fatalf("query %q", q)
	}
	if !slices.Equal(args, []any{int64(1234567), "ten", "c", int64(1234567)}) {
		t.Fatalf("args %v", args)
	}
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{
		"sqlite://" + filepath.Join(dir, "a.db"),
		"sqlite:" + filepath.Join(dir, "b.db"),
		filepath.Join(dir, "c.db"),
	} {
		s, err := Open(context.Background(), u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
	}
	for _, u := range []string{"", "sqlite://", ":memory:", "file:x.db", "mysql://localhost/db", "x.db?mode=ro", "postgres://%zz"} {
		if s, err := Open(context.Background(), u); !errors.Is(err, ErrInvalid) {
			if s != nil {
				_ = s.Close()
			}
			t.Errorf("Open(%q): %v, want ErrInvalid", u, err)
		}
	}
}
