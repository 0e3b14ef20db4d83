package policy

import (
	"strings"
	"testing"
)

func routerPolicy() *Policy {
	return &Policy{
		Realm:       "r",
		Scopes:      []string{"a"},
		Credentials: []Source{{In: "bearer"}},
		Routes: []Route{
			0:  {Name: "root", Path: "/", Public: true},
			1:  {Name: "list", Methods: []string{"GET"}, Path: "/v1/things"},
			2:  {Name: "create", Methods: []string{"POST"}, Path: "/v1/things"},
			3:  {Name: "get", Methods: []string{"GET"}, Path: "/v1/things/{id}"},
			4:  {Name: "me", Methods: []string{"GET"}, Path: "/v1/things/me"},
			5:  {Name: "any-id", Path: "/v1/things/{thing}"},
			6:  {Name: "sub", Methods: []string{"GET"}, Path: "/v1/things/{id}/parts/{part}"},
			7:  {Name: "wild", Path: "/v1/*"},
			8:  {Name: "things-wild", Methods: []string{"DELETE"}, Path: "/v1/things/*"},
			9:  {Name: "first", Methods: []string{"PUT"}, Path: "/v2/x"},
			10: {Name: "second", Methods: []string{"PUT", "PATCH"}, Path: "/v2/x"},
			11: {Name: "lit-then-wild", Methods: []string{"GET"}, Path: "/v3/a/b/*"},
			12: {Name: "param-then-lit", Methods: []string{"GET"}, Path: "/v3/{x}/b/c"},
			13: {Name: "unicode", Path: "/v4/caf\u00e9"},
			14: {Name: "", Path: "/v4/unnamed"},
		},
		Unmatched: &Route{Name: "fallback", Scopes: []string{"a"}},
	}
}

func TestRouterMatch(t *testing.T) {
	c := mustCompile(t, routerPolicy())
	var ps Params
	tests := []struct {
		method, path string
		route        string
		params       []string
	}{
		{"GET", "/", "root", nil},
		{"GET", "/v1/things", "list", nil},
		{"GET", "/v1/things/", "list", nil}, // trailing slash ignored
		{"HEAD", "/v1/things", "list", nil}, // GET implies HEAD
		{"POST", "/v1/things", "create", nil},
		{"PUT", "/v1/things", "wild", nil}, // method filter falls through to a less specific route
		{"GET", "/v1/things/42", "get", []string{"42"}},
		{"GET", "/v1/things/me", "me", nil},                   // literal beats param
		{"POST", "/v1/things/me", "any-id", []string{"me"}},   // literal route lacks POST
		{"DELETE", "/v1/things/42", "any-id", []string{"42"}}, // param beats wildcard
		{"DELETE", "/v1/things/42/x", "things-wild", nil},     // longer literal prefix beats shorter wildcard
		{"GET", "/v1/things/42/parts/7", "sub", []string{"42", "7"}},
		{"GET", "/v1/things/42/parts", "wild", nil},
		{"GET", "/v1", "wild", nil}, // "*" matches zero segments
		{"GET", "/v1/", "wild", nil},
		{"GET", "/v1/other/deep/path", "wild", nil},
		{"PUT", "/v2/x", "first", nil}, // equal specificity: first declared
		{"PATCH", "/v2/x", "second", nil},
		{"GET", "/v3/a/b/c", "lit-then-wild", nil}, // leftmost literal decides
		{"GET", "/v3/z/b/c", "param-then-lit", []string{"z"}},
		{"GET", "/nothing/here", "fallback", nil},
		{"get", "/v1/things", "wild", nil},                  // methods are case-sensitive
		{"GET", "/v1/th%69ngs/4%32", "get", []string{"42"}}, // literals compare decoded; params are decoded
		{"GET", "/v1/things/a%20b", "get", []string{"a b"}},
		{"GET", "/v4/caf%C3%A9", "unicode", nil},
		{"GET", "/v4/caf\u00e9", "unicode", nil},
		{"GET", "/v4/unnamed", "/v4/unnamed", nil}, // a route without a name is named by its path
	}
	for _, tt := range tests {
		r, ok := c.Match([]byte(tt.method), []byte(tt.path), &ps)
		if !ok {
			t.Fatalf("%s %s: refused", tt.method, tt.path)
		}
		if r.Name != tt.route {
			t.Fatalf("%s %s: matched %q, want %q", tt.method, tt.path, r.Name, tt.route)
		}
		if ps.Len() != len(tt.params) {
			t.Fatalf("%s %s: %d params, want %d", tt.method, tt.path, ps.Len(), len(tt.params))
		}
		for i, want := range tt.params {
			if got := string(ps.Get(i)); got != want {
				t.Fatalf("%s %s: param %d = %q, want %q", tt.method, tt.path, i, got, want)
			}
		}
		if ps.Get(len(tt.params)) != nil || ps.Get(-1) != nil {
			t.Fatalf("%s %s: Get out of range returned a value", tt.method, tt.path)
		}
	}
}

func TestRouterDefaultUnmatched(t *testing.T) {
	p := routerPolicy()
	p.Unmatched = nil
	p.Routes = p.Routes[1:3]
	c := mustCompile(t, p)
	var ps Params
	r, ok := c.Match([]byte("GET"), []byte("/elsewhere"), &ps)
	if !ok || r != c.Unmatched() {
		t.Fatalf("want the unmatched route, got %+v %v", r, ok)
	}
	if r.Name != "unmatched" || r.Public || r.Scopes != 0 || !r.AllowKey || !r.AllowToken || r.SessionParam != -1 || r.QueryToken || r.Agent != AgentInherit {
		t.Fatalf("default unmatched route is not \"any valid credential\": %+v", r)
	}
}

func TestRouterSessionParam(t *testing.T) {
	c := mustCompile(t, samplePolicy())
	var ps Params
	r, ok := c.Match([]byte("GET"), []byte("/v3/sessions/sess_1/events"), &ps)
	if !ok || r.Name != "events" || r.SessionParam != 0 || !r.QueryToken {
		t.Fatalf("events route: %+v", r)
	}
	if got := string(ps.Get(r.SessionParam)); got != "sess_1" {
		t.Fatalf("session param %q", got)
	}
	r, _ = c.Match([]byte("POST"), []byte("/v3/sessions/s2/messages"), &ps)
	if r.Name != "steer" || !r.AllowKey || !r.AllowToken || r.QueryToken {
		t.Fatalf("steer route: %+v", r)
	}
	r, _ = c.Match([]byte("POST"), []byte("/v3/sessions/s2/client-tokens"), &ps)
	if r.Name != "mint" || !r.AllowKey || r.AllowToken || r.SessionParam != -1 {
		t.Fatalf("mint route: %+v", r)
	}
	r, _ = c.Match([]byte("GET"), []byte("/v1/admin/users"), &ps)
	if r.Name != "admin" || r.Scopes != AllScopes || !r.All {
		t.Fatalf("admin route: %+v", r)
	}
	r, _ = c.Match([]byte("POST"), []byte("/v1/agents/a1/act"), &ps)
	if r.Agent != AgentRequired {
		t.Fatalf("act route agent mode %v", r.Agent)
	}
	r, _ = c.Match([]byte("GET"), []byte("/v1/threads/t1/anything/else"), &ps)
	if r.Name != "thread any" || !r.All || r.Scopes != 1<<1 {
		t.Fatalf("thread any route: %+v", r)
	}
	r, _ = c.Match([]byte("GET"), []byte("/v1/threads/t1"), &ps)
	if r.Name != "get thread" || r.All || r.Scopes != 1<<0|1<<1 {
		t.Fatalf("get thread route: %+v", r)
	}
}

// TestPathConfusionRefused: a path an upstream could normalize into another path is never
// routed, so a request cannot be checked against one route and served by another.
func TestPathConfusionRefused(t *testing.T) {
	c := mustCompile(t, routerPolicy())
	var ps Params
	refused := []string{
		"",
		"v1/things",
		"*",
		"/v1/things/../admin",
		"/v1/./things",
		"/..",
		"/.",
		"/v1/things/..",
		"//v1/things",
		"/v1//things",
		"/v1/things//",
		"/v1/%2e%2e/admin",
		"/v1/%2E%2E/admin",
		"/v1/%2e/things",
		"/v1/.%2e/admin",
		"/v1/things%2fme",
		"/v1/things%2Fme",
		"/v1/things%5cme",
		"/v1/things%5Cme",
		`/v1/things\me`,
		`/v1\things`,
		"/v1/things;jsessionid=1",
		"/v1/things/..;/admin",
		"/v1/things/%",
		"/v1/things/%4",
		"/v1/things/%zz",
		"/v1/things/%00",
		"/v1/things/%0a",
		"/v1/things/%7f",
		"/v1/things/a\x00b",
		"/v1/things/a b",
		"/v1/things/a\tb",
		"/v1/things?x=1",
		"/v1/things#frag",
		"/v1/things/%c0%ae%c0%ae", // overlong UTF-8 dots
		"/v1/things/\xff",
		"/" + strings.Repeat("a", 4096),
		strings.Repeat("/a", 33),
	}
	for _, path := range refused {
		if r, ok := c.Match([]byte("GET"), []byte(path), &ps); ok || r != nil {
			t.Fatalf("%q: routed to %+v", path, r)
		}
	}
	accepted := []string{
		"/",
		"/v1/things/",
		"/v1/things/...",
		"/v1/things/.x",
		"/v1/things/x.",
		"/v1/things/%41",
		"/v1/things/%2541", // %25 decodes to '%'; upstreams decode once
		strings.Repeat("/a", 32),
		"/v1/things/caf\u00e9",
	}
	for _, path := range accepted {
		if _, ok := c.Match([]byte("GET"), []byte(path), &ps); !ok {
			t.Fatalf("%q: refused", path)
		}
	}
}

func TestRouterParamsStayValid(t *testing.T) {
	// Decoded parameters live in the Params buffer; two decoded params must not overlap.
	c := mustCompile(t, routerPolicy())
	var ps Params
	r, ok := c.Match([]byte("GET"), []byte("/v1/things/%41%42/parts/%43%44"), &ps)
	if !ok || r.Name != "sub" || string(ps.Get(0)) != "AB" || string(ps.Get(1)) != "CD" {
		t.Fatalf("got %v %q %q", ok, ps.Get(0), ps.Get(1))
	}
	// Appending to a returned param must not overwrite the next one.
	_ = append(ps.Get(0), 'X')
	if string(ps.Get(1)) != "CD" {
		t.Fatalf("params share capacity: %q", ps.Get(1))
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	c := mustCompile(t, samplePolicy())
	var ps Params
	for _, path := range []string{"/v3/sessions/sess_1/events", "/v1/threads/%41bc/x/y", "/unknown", "/v1/../x"} {
		m, p := []byte("GET"), []byte(path)
		if n := testing.AllocsPerRun(100, func() { c.Match(m, p, &ps) }); n != 0 {
			t.Fatalf("%s: %v allocations", path, n)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	c := mustCompile(b, samplePolicy())
	var ps Params
	for _, bc := range []struct{ name, method, path string }{
		{"literal", "GET", "/v1/threads"},
		{"session", "GET", "/v3/sessions/sess_0123456789/events"},
		{"wildcard", "GET", "/v1/threads/t1/a/b/c"},
		{"unmatched", "GET", "/api/v9/nothing/here"},
		{"decoded", "GET", "/v3/sessions/sess%5F1/events"},
	} {
		m, p := []byte(bc.method), []byte(bc.path)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c.Match(m, p, &ps)
			}
		})
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range []string{"/v1/threads", "/v3/sessions/s%5F1/events", "/v1/threads/x/y/z", "/v1/%2e%2e/x", "//x", "/a/./b", "/v1/threads/"} {
		f.Add("GET", s)
	}
	c := mustCompile(f, samplePolicy())
	f.Fuzz(func(t *testing.T, method, path string) {
		var ps Params
		r, ok := c.Match([]byte(method), []byte(path), &ps)
		if !ok {
			if r != nil {
				t.Fatalf("refused with a route")
			}
			return
		}
		if r == nil {
			t.Fatalf("routed to nil")
		}
		// Nothing a normalizing upstream would rewrite gets through.
		for _, seg := range strings.Split(strings.TrimSuffix(path[1:], "/"), "/") {
			low := strings.ToLower(seg)
			if seg == "" && path != "/" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\\;?#") ||
				strings.Contains(low, "%2e") || strings.Contains(low, "%2f") || strings.Contains(low, "%5c") {
				t.Fatalf("%q routed to %q", path, r.Name)
			}
		}
		for i := 0; i < ps.Len(); i++ {
			if len(ps.Get(i)) == 0 {
				t.Fatalf("%q: empty parameter %d", path, i)
			}
		}
		if r.SessionParam >= ps.Len() {
			t.Fatalf("%q: session parameter %d of %d", path, r.SessionParam, ps.Len())
		}
	})
}
