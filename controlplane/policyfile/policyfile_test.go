package policyfile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/policy"
)

const good = `# a small valid policy
realm: dev
scopes: [read, write]
credentials:
  - in: bearer
  - {in: header, name: X-API-Key}
key_types:
  - name: standard
    prefix: sk_
    rate_class: default
rate_classes:
  - {name: default, per_second: 5, burst: 10}
routes:
  - {name: health, methods: [GET], path: /health, public: true}
  - name: write
    methods: [POST]
    path: /v1/things
    scopes: [write]
errors:
  - status: 401
    message: Nope
    messages: {expired: Too old}
    body: '{"error":"{{message}}"}'
`

func TestParseGood(t *testing.T) {
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if p.Realm != "dev" || len(p.Routes) != 2 || p.Routes[1].Scopes[0] != "write" || p.Errors[0].Messages["expired"] != "Too old" {
		t.Fatalf("parsed %+v", p)
	}
	// Empty lists are nil, so the policy survives an encode/decode round trip unchanged.
	if p.Routes[0].Scopes != nil || p.KeyTypes[0].ScopeCap != nil {
		t.Fatalf("empty lists are not nil")
	}
	b, err := policy.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := policy.Decode(b)
	if err != nil || !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, p)
	}
}

func TestParseEmptyListsNormalized(t *testing.T) {
	src := strings.Replace(good, "scopes: [write]", "scopes: [write]\n    credentials: []", 1) + "    headers: []\n"
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if p.Routes[1].Credentials != nil || p.Errors[0].Headers != nil {
		t.Fatalf("empty lists are not nil")
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		want string
		is   error
	}{
		{"unknown top-level key", good + "bogus: 1\n", 24, `unknown field "bogus"`, ErrSyntax},
		{"unknown route key", strings.Replace(good, "    scopes: [write]", "    scope: [write]", 1), 18, `unknown field "scope"`, ErrSyntax},
		{"misspelled key in flow map", strings.Replace(good, "{in: header, name: X-API-Key}", "{in: header, nmae: X-API-Key}", 1), 6, `unknown field "nmae"`, ErrSyntax},
		{"two documents", good + "---\nrealm: other\n", 24, "one YAML document", ErrSyntax},
		{"empty file", "", 1, "empty policy file", ErrSyntax},
		{"comment only", "# nothing\n", 1, "empty policy file", ErrSyntax},
		{"wrong type", strings.Replace(good, "burst: 10", "burst: ten", 1), 12, "cannot unmarshal", ErrSyntax},
		{"duplicate key", strings.Replace(good, "realm: dev", "realm: dev\nrealm: prod", 1), 3, `"realm" already defined`, ErrSyntax},
		{"syntax error", good + "routes: [\n", 24, "did not find expected node content", ErrSyntax},
		{"tab indentation", strings.Replace(good, "    prefix: sk_", "\tprefix: sk_", 1), 8, "tab character", ErrSyntax},
		{"invalid route path", strings.Replace(good, "path: /v1/things", "path: /v1/{id", 1), 17, `routes[1].path: segment "{id" is not a valid parameter`, policy.ErrInvalid},
		{"invalid status", strings.Replace(good, "status: 401", "status: 418", 1), 20, "errors[0].status: 418 is not one of", policy.ErrInvalid},
		{"invalid message key", strings.Replace(good, "expired: Too old", "scope: x", 1), 22, "errors[0].messages.scope:", policy.ErrInvalid},
		{"missing realm", strings.Replace(good, "realm: dev\n", "", 1), 2, "realm: is required", policy.ErrInvalid},
		{"unknown rate class", strings.Replace(good, "rate_class: default", "rate_class: gold", 1), 10, `key_types[0].rate_class: unknown rate class "gold"`, policy.ErrInvalid},
		{"duplicate prefix", strings.Replace(good, "    rate_class: default\n", "  - {name: other, prefix: sk_}\n", 1), 10, `key_types[1].prefix: "sk_" is also the prefix of key_types[0]`, policy.ErrInvalid},
		{"scope list item", strings.Replace(good, "scopes: [read, write]", "scopes: [read, \"*\"]", 1), 3, `scopes[1]: "*" is implicit`, policy.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.src))
			if err == nil || p != nil {
				t.Fatalf("accepted")
			}
			if !errors.Is(err, tt.is) {
				t.Fatalf("error does not match %v: %v", tt.is, err)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("not an *Error: %v", err)
			}
			found := false
			for _, e := range flatten(err) {
				if e.Line == tt.line && strings.Contains(e.Error(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("want line %d: …%s…, got:\n%v", tt.line, tt.want, err)
			}
		})
	}
}

func flatten(err error) []*Error {
	var out []*Error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	var pe *Error
	if errors.As(err, &pe) {
		out = append(out, pe)
	}
	return out
}

func TestParseReportsEveryProblem(t *testing.T) {
	src := strings.Replace(strings.Replace(good, "status: 401", "status: 418", 1), "path: /v1/things", "path: v1", 1)
	_, err := Parse([]byte(src))
	if n := len(flatten(err)); n != 2 {
		t.Fatalf("want 2 problems, got %d:\n%v", n, err)
	}
	if !strings.Contains(err.Error(), "line 17: routes[1].path:") || !strings.Contains(err.Error(), "line 20: errors[0].status:") {
		t.Fatalf("messages:\n%v", err)
	}
}

func TestParseTooLarge(t *testing.T) {
	if _, err := Parse(make([]byte, MaxFileBytes+1)); !errors.Is(err, ErrSyntax) {
		t.Fatalf("oversized file: %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(ok, []byte(good), 0o600)
	os.WriteFile(bad, []byte(good+"bogus: 1\n"), 0o600)
	if p, err := LoadFile(ok); err != nil || p.Realm != "dev" {
		t.Fatalf("LoadFile: %v", err)
	}
	_, err := LoadFile(bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":24: ") {
		t.Fatalf("error does not name file and line: %v", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("realm: x\ncredentials: [{in: bearer}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if p != nil {
				t.Fatalf("error and a policy")
			}
			return
		}
		if _, err := policy.Compile(p); err != nil {
			t.Fatalf("parsed policy does not compile: %v", err)
		}
	})
}
