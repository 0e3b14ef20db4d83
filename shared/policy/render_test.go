package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

type wantResp struct {
	status  int
	headers []Header
	body    string
}

func checkResp(t *testing.T, what string, got *Response, want wantResp) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil response", what)
	}
	if got.Status != want.status {
		t.Fatalf("%s: status %d, want %d", what, got.Status, want.status)
	}
	if string(got.Body) != want.body {
		t.Fatalf("%s: body\n got %s\nwant %s", what, got.Body, want.body)
	}
	if len(got.Headers) != len(want.headers) {
		t.Fatalf("%s: headers %q, want %q", what, got.Headers, want.headers)
	}
	for i := range want.headers {
		if got.Headers[i] != want.headers[i] {
			t.Fatalf("%s: headers %q, want %q", what, got.Headers, want.headers)
		}
	}
	if !json.Valid(got.Body) {
		t.Fatalf("%s: body is not JSON: %s", what, got.Body)
	}
}

var ctJSON = Header{Name: "Content-Type", Value: "application/json"}

func TestRenderExactBytes(t *testing.T) {
	c := mustCompile(t, samplePolicy())
	chal := func(v string) Header { return Header{Name: "WWW-Authenticate", Value: v} }
	tests := []struct {
		what string
		got  *Response
		want wantResp
	}{
		{"missing", c.Error(ReasonMissing), wantResp{401, []Header{ctJSON, chal(`Bearer realm="prod"`)},
			`{"error":"Invalid or missing token","code":"UNAUTHORIZED","statusCode":401}`}},
		{"invalid", c.Error(ReasonInvalid), wantResp{401, []Header{ctJSON, chal(`Bearer realm="prod", error="invalid_token"`)},
			`{"error":"Invalid or missing token","code":"UNAUTHORIZED","statusCode":401}`}},
		{"expired (per-reason message)", c.Error(ReasonExpired), wantResp{401, []Header{ctJSON, chal(`Bearer realm="prod", error="invalid_token"`)},
			`{"error":"Token expired","code":"UNAUTHORIZED","statusCode":401}`}},
		{"revoked", c.Error(ReasonRevoked), wantResp{401, []Header{ctJSON, chal(`Bearer realm="prod", error="invalid_token"`)},
			`{"error":"Invalid or missing token","code":"UNAUTHORIZED","statusCode":401}`}},
		{"scope", c.Error(ReasonScope), wantResp{403,
			[]Header{ctJSON, {Name: "Cache-Control", Value: "no-store"}, chal(`Bearer realm="prod", error="insufficient_scope"`)},
			`{"error":"The credential lacks the scope this request requires.","reason":"scope"}`}},
		{"session", c.Error(ReasonSession), wantResp{403, []Header{ctJSON, {Name: "Cache-Control", Value: "no-store"}},
			`{"error":"The token is not valid for this session.","reason":"session"}`}},
		{"path", c.Error(ReasonPath), wantResp{403, []Header{ctJSON, {Name: "Cache-Control", Value: "no-store"}},
			`{"error":"The request path is not allowed.","reason":"path"}`}},
		{"budget (no spec: default rendering)", c.Error(ReasonBudget), wantResp{402, []Header{ctJSON},
			`{"error":"budget","message":"The organization has exhausted its budget."}`}},
		{"rate limited (spec Content-Type wins)", c.Error(ReasonRateLimited),
			wantResp{429, []Header{{Name: "Content-Type", Value: "application/problem+json"}}, `{"error":"rate_limited","message":"Slow down"}`}},
		{"unavailable", c.Error(ReasonUnavailable), wantResp{503, []Header{ctJSON},
			`{"error":"unavailable","message":"The service is temporarily unavailable."}`}},
		{"unknown reason fails closed", c.Error(Reason(200)), wantResp{503, []Header{ctJSON},
			`{"error":"unavailable","message":"The service is temporarily unavailable."}`}},
		{"no policy: missing", DefaultError(ReasonMissing), wantResp{401, []Header{ctJSON, chal(`Bearer`)},
			`{"error":"missing","message":"A credential is required."}`}},
		{"no policy: invalid", DefaultError(ReasonInvalid), wantResp{401, []Header{ctJSON, chal(`Bearer error="invalid_token"`)},
			`{"error":"invalid","message":"The credential is not valid."}`}},
		{"no policy: unavailable", DefaultError(ReasonUnavailable), wantResp{503, []Header{ctJSON},
			`{"error":"unavailable","message":"The service is temporarily unavailable."}`}},
		{"no policy: reason 0", DefaultError(0), wantResp{503, []Header{ctJSON},
			`{"error":"unavailable","message":"The service is temporarily unavailable."}`}},
	}
	for _, tt := range tests {
		checkResp(t, tt.what, tt.got, tt.want)
	}
}

func TestRenderRouteDenyMessage(t *testing.T) {
	c := mustCompile(t, samplePolicy())
	var ps Params
	route, _ := c.Match([]byte("POST"), []byte("/v1/threads"), &ps)
	if route.Name != "create thread" {
		t.Fatalf("route %q", route.Name)
	}
	checkResp(t, "route scope", route.Error(c, ReasonScope), wantResp{403,
		[]Header{ctJSON, {Name: "Cache-Control", Value: "no-store"}, {Name: "WWW-Authenticate", Value: `Bearer realm="prod", error="insufficient_scope"`}},
		`{"error":"Agent keys cannot create threads","reason":"scope"}`})
	checkResp(t, "route credential", route.Error(c, ReasonCredential), wantResp{403,
		[]Header{ctJSON, {Name: "Cache-Control", Value: "no-store"}},
		`{"error":"Agent keys cannot create threads","reason":"credential"}`})
	// Reasons the deny message would misstate keep the realm's rendering (the same pointer).
	for _, r := range []Reason{ReasonSession, ReasonAgent, ReasonSuspended, ReasonMissing, ReasonBudget} {
		if route.Error(c, r) != c.Error(r) {
			t.Fatalf("%v: route rendering differs from the realm's", r)
		}
	}
	other, _ := c.Match([]byte("GET"), []byte("/v1/threads"), &ps)
	if other.Error(c, ReasonScope) != c.Error(ReasonScope) {
		t.Fatalf("route without deny message has its own rendering")
	}
	if c.Unmatched().Error(c, ReasonScope) != c.Error(ReasonScope) {
		t.Fatalf("unmatched route has its own rendering")
	}
}

func TestRenderChallengeNone(t *testing.T) {
	p := samplePolicy()
	p.Challenge = "none"
	c := mustCompile(t, p)
	for r := ReasonMissing; r < numReasons; r++ {
		if v := c.Error(r).Header("WWW-Authenticate"); v != "" {
			t.Fatalf("%v: challenge %q with challenge: none", r, v)
		}
	}
}

func TestRenderSpecChallengeWins(t *testing.T) {
	p := samplePolicy()
	p.Errors[0].Headers = []Header{{Name: "www-authenticate", Value: `Bearer realm="custom"`}}
	c := mustCompile(t, p)
	resp := c.Error(ReasonInvalid)
	if len(resp.Headers) != 2 || resp.Headers[1].Value != `Bearer realm="custom"` {
		t.Fatalf("headers %q", resp.Headers)
	}
}

func TestRenderEscapesMessages(t *testing.T) {
	messages := []string{
		`plain`,
		`"quoted" and \backslashed\`,
		"newline\n tab\t cr\r bs\b ff\f nul\x00 unit\x1f del\x7f",
		"unicode é ü 日本 😀",
		"separators \u2028 \u2029",
		`<html> & 'single'`,
	}
	for _, m := range messages {
		p := samplePolicy()
		p.Errors[0].Message = m
		p.Errors[0].Messages = nil
		c := mustCompile(t, p)
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		wantBody := `{"error":` + strings.TrimSuffix(want.String(), "\n") + `,"code":"UNAUTHORIZED","statusCode":401}`
		got := c.Error(ReasonMissing).Body
		if string(got) != wantBody {
			t.Fatalf("message %q:\n got %s\nwant %s", m, got, wantBody)
		}
		var back struct{ Error string }
		if err := json.Unmarshal(got, &back); err != nil || back.Error != m {
			t.Fatalf("message %q does not round-trip: %q %v", m, back.Error, err)
		}
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	inputs := []string{"\xff", "a\xc3", "\xed\xa0\x80", "ok\u00e9\xfe", strings.Repeat("\x01", 3)}
	for i := 0; i < 256; i++ {
		inputs = append(inputs, string(rune(i)), string([]byte{byte(i)}))
	}
	for _, s := range inputs {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		w := strings.TrimSuffix(want.String(), "\n")
		got := `"` + string(appendJSONString(nil, s)) + `"`
		if got != w {
			t.Fatalf("%q: got %s want %s", s, got, w)
		}
	}
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `""`, `0`, `-0`, `1.5e+3`, `true`, ` null `, `{"a":[1,{"b":"\u00e9"}]}`,
		`{`, `{"a"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `1e`, `"\x"`, "\"\x01\"", `tru`, `nul`, `{"a":1}{}`,
		`"\ud800"`, `{"a":-}`, `[1 2]`, ``, ` `,
	} {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Fatalf("%q: validJSON %v, encoding/json %v", s, got, want)
		}
	}
	// Unlike encoding/json, invalid UTF-8 is refused: a body is sent as UTF-8 JSON.
	if validJSON([]byte("\"\xff\"")) {
		t.Fatalf("invalid UTF-8 accepted")
	}
	deep := strings.Repeat("[", 17) + strings.Repeat("]", 17)
	if validJSON([]byte(deep)) {
		t.Fatalf("nesting beyond MaxErrorBodyDepth accepted")
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `"\u00e9"`, `-1.5e-3`, `[`, `{"a":1,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := validJSON(b)
		if got && !json.Valid(b) {
			t.Fatalf("validJSON accepted what encoding/json refuses: %q", b)
		}
		if !got && json.Valid(b) && utf8.Valid(b) && depth(b) <= 16 {
			t.Fatalf("validJSON refused valid JSON: %q", b)
		}
	})
}

// depth is a rough nesting depth (brackets outside strings) for the fuzz oracle.
func depth(b []byte) int {
	d, max, in, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case !in && (c == '[' || c == '{'):
			d++
			if d > max {
				max = d
			}
		case !in && (c == ']' || c == '}'):
			d--
		}
	}
	return max
}

func TestReasonNamesAndStatuses(t *testing.T) {
	want := map[Reason]struct {
		name   string
		status int
	}{
		ReasonMissing: {"missing", 401}, ReasonInvalid: {"invalid", 401}, ReasonExpired: {"expired", 401},
		ReasonRevoked: {"revoked", 401}, ReasonScope: {"scope", 403}, ReasonSession: {"session", 403},
		ReasonAgent: {"agent", 403}, ReasonCredential: {"credential", 403}, ReasonPath: {"path", 403},
		ReasonBudget: {"budget", 402}, ReasonSuspended: {"suspended", 403}, ReasonRateLimited: {"rate_limited", 429},
		ReasonUnavailable: {"unavailable", 503},
	}
	if len(want) != int(numReasons)-1 {
		t.Fatalf("table covers %d reasons, there are %d", len(want), numReasons-1)
	}
	for r, w := range want {
		if r.String() != w.name || r.Status() != w.status {
			t.Fatalf("%d: %s %d, want %s %d", r, r, r.Status(), w.name, w.status)
		}
		if back, ok := ParseReason(w.name); !ok || back != r {
			t.Fatalf("ParseReason(%q) = %v %v", w.name, back, ok)
		}
	}
	if Reason(0).String() != "none" || Reason(0).Status() != 200 || Reason(99).Status() != 503 {
		t.Fatalf("zero or unknown reason")
	}
	if _, ok := ParseReason("none"); ok {
		t.Fatalf("none parsed as a reason")
	}
}
