package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

type keyJSON struct {
	Key      apiKey `json:"key"`
	Secret   string `json:"secret"`
	Previous apiKey `json:"previous"`
}

func TestKeysLifecycle(t *testing.T) {
	s := startServer(t)
	env := s.env()

	// Human output: the key's fields, and its secret once.
	out := ok(t, env, "keys", "create", "--type", "live", "--name", "ci", "--scope", "read", "--scope", "write", "--org", "acme", "--expires-in", "720h")
	for _, want := range []string{"Created key key_", "name:", "ci", "read write", "acme", "lk_live_…", "shown once"} {
		if !strings.Contains(out, want) {
			t.Fatalf("keys create output lacks %q:\n%s", want, out)
		}
	}
	if secrets := secretRE.FindAllString(out, -1); len(secrets) != 1 || !strings.HasPrefix(secrets[0], "lk_live_") {
		t.Fatalf("keys create prints secrets %v", secrets)
	}

	// --json: the API's answer.
	var created keyJSON
	if err := json.Unmarshal([]byte(ok(t, env, "keys", "create", "--type", "test", "--name", "sandbox", "--json")), &created); err != nil {
		t.Fatal(err)
	}
	if created.Key.Type != "test" || !strings.HasPrefix(created.Secret, "lk_test_") || !strings.HasPrefix(created.Key.ID, "key_") {
		t.Fatalf("keys create --json: %+v", created)
	}

	// A table: header, the bootstrap admin key and the two keys.
	table := ok(t, env, "keys", "list")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 || !regexp.MustCompile(`^ID\s+TYPE\s+NAME\s+KEY\s+SCOPES\s+ORG\s+STATE`).MatchString(lines[0]) {
		t.Fatalf("keys list:\n%s", table)
	}
	if !strings.Contains(table, created.Key.ID) || secretRE.MatchString(table) {
		t.Fatalf("keys list shows a secret or misses a key:\n%s", table)
	}
	if got := ok(t, env, "keys", "list", "--type", "test"); strings.Count(got, "key_") != 1 || !strings.Contains(got, created.Key.ID) {
		t.Fatalf("keys list --type test:\n%s", got)
	}

	// Rotation with no grace: the old key is revoked at once, the new one printed with its secret.
	var rotated keyJSON
	if err := json.Unmarshal([]byte(ok(t, env, "keys", "rotate", created.Key.ID, "--grace", "0s", "--json")), &rotated); err != nil {
		t.Fatal(err)
	}
	if rotated.Previous.ID != created.Key.ID || rotated.Previous.RevokedAt == nil || rotated.Key.ID == created.Key.ID ||
		!strings.HasPrefix(rotated.Secret, "lk_test_") || rotated.Key.RotatedFrom == nil || *rotated.Key.RotatedFrom != created.Key.ID {
		t.Fatalf("keys rotate --json: %+v", rotated)
	}
	var listed struct{ Data []apiKey }
	if err := json.Unmarshal([]byte(ok(t, env, "keys", "list", "--json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Data) != 3 {
		t.Fatalf("keys list --json: %d keys, want 3 (admin, live, rotated test)", len(listed.Data))
	}
	for _, k := range listed.Data {
		if k.ID == created.Key.ID {
			t.Fatalf("a revoked key listed without --include-revoked: %+v", k)
		}
	}
	all := ok(t, env, "keys", "list", "--include-revoked")
	if !regexp.MustCompile(created.Key.ID + `.*revoked`).MatchString(all) {
		t.Fatalf("keys list --include-revoked:\n%s", all)
	}

	// Rotation with a grace period, flags after the argument.
	out = ok(t, env, "keys", "rotate", rotated.Key.ID, "--grace", "1h")
	if !strings.Contains(out, "stops working at") || len(secretRE.FindAllString(out, -1)) != 1 {
		t.Fatalf("keys rotate --grace 1h:\n%s", out)
	}

	// Revoke.
	out = ok(t, env, "keys", "revoke", rotated.Key.ID)
	if !strings.Contains(out, "Revoked key "+rotated.Key.ID) || !strings.Contains(out, "revoked") {
		t.Fatalf("keys revoke:\n%s", out)
	}
}

func TestAPIErrorsArePrintedWithExitCode1(t *testing.T) {
	s := startServer(t)
	env := s.env()
	// 422 naming the field.
	fails(t, env, 1, `^latchkey: .*unknown key type "nope".*\n$`, "keys", "create", "--type", "nope")
	fails(t, env, 1, `^latchkey: .*\(?scopes`, "keys", "create", "--type", "live", "--scope", "no-such-scope")
	// 404.
	fails(t, env, 1, `^latchkey: .*not found`, "keys", "revoke", "key_00000000000000000000")
	// 401: a wrong admin key (well-formed or not).
	bad := map[string]string{envURL: s.url, envAdminKey: "lk_admin_notakey"}
	fails(t, bad, 1, `^latchkey: `, "keys", "list")
	// The server is not there.
	gone := map[string]string{envURL: "http://127.0.0.1:1", envAdminKey: s.adminKey}
	fails(t, gone, 1, `^latchkey: cannot reach http://127.0.0.1:1`, "realm")
}

func TestUsageErrorsExit2(t *testing.T) {
	s := startServer(t)
	env := s.env()
	noKey := map[string]string{envURL: s.url}
	for _, tc := range []struct {
		env     map[string]string
		pattern string
		args    []string
	}{
		{env, `no command`, nil},
		{env, `unknown command "frobnicate"`, []string{"frobnicate"}},
		{env, `keys: missing subcommand`, []string{"keys"}},
		{env, `keys: unknown subcommand "delete"`, []string{"keys", "delete"}},
		{env, `--type is required`, []string{"keys", "create"}},
		{env, `flag provided but not defined: -colour`, []string{"keys", "list", "--colour"}},
		{env, `keys revoke: want 1 argument`, []string{"keys", "revoke"}},
		{env, `keys revoke: want 1 argument`, []string{"keys", "revoke", "a", "b"}},
		{env, `--grace must be`, []string{"keys", "rotate", "key_1", "--grace", "-1s"}},
		{env, `invalid value "soon" for flag -expires-in`, []string{"keys", "create", "--type", "live", "--expires-in", "soon"}},
		{env, `--session is required`, []string{"tokens", "mint"}},
		{env, `realm: unknown subcommand "delete"`, []string{"realm", "delete"}},
		{env, `realm create: want 1 argument`, []string{"realm", "create"}},
		{env, `--url "ftp://x"`, []string{"realm", "--url", "ftp://x"}},
		{noKey, `no admin key: pass --admin-key or set LATCHKEY_ADMIN_KEY`, []string{"keys", "list"}},
		{env, `--trusted-key: .*ed25519`, []string{"snapshot", "inspect", "--dir", t.TempDir(), "--trusted-key", "rsa:abc"}},
		{env, `--log-level \(LATCHKEY_LOG_LEVEL\)`, []string{"serve", "--log-level", "loud"}},
	} {
		r := fails(t, tc.env, 2, tc.pattern, tc.args...)
		if !strings.Contains(r.stderr, "latchkey help") && !strings.Contains(r.stderr, "Usage") {
			t.Fatalf("%v: no usage hint:\n%s", tc.args, r.stderr)
		}
	}
	// Help is not an error.
	for _, args := range [][]string{{"help"}, {"keys", "list", "-h"}, {"serve", "-h"}} {
		if r := runCLI(t, env, args...); r.code != 0 {
			t.Fatalf("%v: exit %d", args, r.code)
		}
	}
}
