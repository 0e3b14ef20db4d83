package policy

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
)

func TestScopeMask(t *testing.T) {
	c := mustCompile(t, samplePolicy())
	// Dictionary: threads:read=0 threads:write=1 agents:read=2 agents:write=3 read=4 steer=5
	tests := []struct {
		names []string
		mask  uint64
	}{
		{nil, 0},
		{[]string{"threads:read"}, 1},
		{[]string{"steer", "threads:write"}, 1<<5 | 1<<1},
		{[]string{"read", "*"}, AllScopes},
		{[]string{"*"}, AllScopes},
	}
	for _, tt := range tests {
		m, err := c.ScopeMask(tt.names)
		if err != nil || m != tt.mask {
			t.Fatalf("%q: %x %v, want %x", tt.names, m, err, tt.mask)
		}
	}
	_, err := c.ScopeMask([]string{"read", "write"})
	if !errors.Is(err, ErrUnknownScope) || err.Error() != `policy: unknown scope "write"` {
		t.Fatalf("unknown scope: %v", err)
	}
}

func TestScopeMaskBytes(t *testing.T) {
	c := mustCompile(t, samplePolicy())
	tests := []struct {
		claim string
		mask  uint64
	}{
		{"", 0},
		{"read", 1 << 4},
		{"read steer", 1<<4 | 1<<5},
		{"  read   steer ", 1<<4 | 1<<5},
		{"read admin", 1 << 4}, // unknown names grant nothing
		{"READ", 0},            // scope names are case-sensitive
		{"read *", AllScopes},
		{"*", AllScopes},
		{"**", 0},
		{"read\tsteer", 0}, // only spaces separate
		{"threads:read agents:write", 1 | 1<<3},
	}
	for _, tt := range tests {
		if m := c.ScopeMaskBytes([]byte(tt.claim)); m != tt.mask {
			t.Fatalf("%q: %x, want %x", tt.claim, m, tt.mask)
		}
	}
}

func TestAppendScopesAndNames(t *testing.T) {
	c := mustCompile(t, samplePolicy())
	tests := []struct {
		mask  uint64
		text  string
		names []string
	}{
		{0, "", nil},
		{1<<5 | 1, "threads:read steer", []string{"threads:read", "steer"}},
		{AllScopes, "*", []string{"*"}},
		{1<<6 - 1, "threads:read threads:write agents:read agents:write read steer",
			[]string{"threads:read", "threads:write", "agents:read", "agents:write", "read", "steer"}},
		{1<<40 | 1<<2, "agents:read", []string{"agents:read"}}, // bits beyond the dictionary are ignored
	}
	for _, tt := range tests {
		if got := string(c.AppendScopes([]byte("x:"), tt.mask)); got != "x:"+tt.text {
			t.Fatalf("%x: %q, want %q", tt.mask, got, "x:"+tt.text)
		}
		if got := c.ScopeNames(tt.mask); !reflect.DeepEqual(got, tt.names) {
			t.Fatalf("%x: names %q, want %q", tt.mask, got, tt.names)
		}
	}
	// Round trip through the claim form.
	for _, m := range []uint64{0, 1, 1<<5 | 1<<3, 1<<6 - 1, AllScopes} {
		if back := c.ScopeMaskBytes(c.AppendScopes(nil, m)); back != m {
			t.Fatalf("%x -> %q -> %x", m, c.AppendScopes(nil, m), back)
		}
	}
}

func TestScopeDictionaryOf63(t *testing.T) {
	p := &Policy{Realm: "r", Credentials: []Source{{In: "bearer"}}}
	for i := 0; i < 63; i++ {
		p.Scopes = append(p.Scopes, "s"+strconv.Itoa(i))
	}
	c := mustCompile(t, p)
	m, err := c.ScopeMask(p.Scopes)
	if err != nil || m != 1<<63-1 || m == AllScopes {
		t.Fatalf("all 63 scopes: %x %v (must differ from AllScopes)", m, err)
	}
	if got := c.ScopeMaskBytes([]byte("s62 s0")); got != 1<<62|1 {
		t.Fatalf("s62 s0: %x", got)
	}
}

func TestKeyTypesCompiled(t *testing.T) {
	c := mustCompile(t, samplePolicy())
	if c.NumKeyTypes() != 3 {
		t.Fatalf("%d key types", c.NumKeyTypes())
	}
	std, internal, agent := c.KeyType(0), c.KeyType(1), c.KeyType(2)
	if std.Name != "standard" || std.Label != "std" || string(std.LabelBytes) != "std" || std.Spec.Prefix != "tb_" ||
		std.Cap != AllScopes || std.Default != 0 || std.RateClass != 0 || std.Agents != AgentNone {
		t.Fatalf("standard: %+v", std)
	}
	if internal.Label != "internal" || internal.Default != AllScopes || internal.RateClass != -1 {
		t.Fatalf("internal: %+v", internal)
	}
	if agent.Cap != 1|1<<2 || agent.Default != 1 || agent.Agents != AgentOptional || agent.Spec.Format.String() != "hex64" {
		t.Fatalf("agent: %+v", agent)
	}
	if c.KeyType(3) != nil || c.KeyType(-1) != nil || c.KeyTypeIndex("agent") != 2 || c.KeyTypeIndex("x") != -1 {
		t.Fatalf("key type lookups")
	}
	for key, want := range map[string]int{
		"tb_abc": 0, "tb_internal_abc": 1, "tb_internal": 0, "at_00": 2, "xx_": -1, "": -1, "TB_x": -1,
	} {
		if got := c.MatchKeyType([]byte(key)); got != want {
			t.Fatalf("MatchKeyType(%q) = %d, want %d", key, got, want)
		}
	}
	rc := c.RateClass(1)
	if c.NumRateClasses() != 2 || rc.Name != "browser" || rc.PerSecond != 0.5 || rc.Burst != 5 || c.RateClass(2) != nil {
		t.Fatalf("rate classes: %+v", rc)
	}
	tok := c.Tokens()
	if tok.Issuer != "https://auth.example" || tok.Audience != "api" || tok.Scopes != 1<<4|1<<5 || tok.MaxTTL != 600 ||
		tok.Leeway != 10 || tok.RateClass != 1 {
		t.Fatalf("tokens: %+v", tok)
	}
	src := c.Sources()
	if len(src) != 3 || src[0].Name != "authorization" || src[1].Name != "x-api-key" || src[2].Name != "token" || c.QueryParam() != "token" {
		t.Fatalf("sources: %+v", src)
	}
	if c.AgentHeader() != "x-agent-id" || c.Realm() != "prod" {
		t.Fatalf("agent header %q realm %q", c.AgentHeader(), c.Realm())
	}
	id := c.Identity()
	if string(id.Org) != "x-latchkey-org" || string(id.Credential) != "x-latchkey-credential" {
		t.Fatalf("identity: %q %q", id.Org, id.Credential)
	}
}

func TestTokenDefaults(t *testing.T) {
	p := samplePolicy()
	p.Tokens.MaxTTLSeconds, p.Tokens.LeewaySeconds, p.Tokens.RateClass = 0, 0, ""
	p.Identity.Agent = ""
	c := mustCompile(t, p)
	if tok := c.Tokens(); tok.MaxTTL != 3600 || tok.Leeway != 30 || tok.RateClass != -1 {
		t.Fatalf("defaults: %+v", tok)
	}
	if c.Identity().Agent != nil {
		t.Fatalf("unset identity header is not nil")
	}
	p.Tokens = nil
	p.Routes = p.Routes[:6]
	if mustCompile(t, p).Tokens() != nil {
		t.Fatalf("tokens not nil without a token policy")
	}
}

func TestCompiledDoesNotAliasPolicy(t *testing.T) {
	p := samplePolicy()
	c := mustCompile(t, p)
	p.Scopes[0] = "changed"
	p.Routes[1].Methods[0] = "DELETE"
	p.Credentials[1].Name = "X-Other"
	var ps Params
	if r, _ := c.Match([]byte("GET"), []byte("/v1/threads"), &ps); r.Name != "list threads" {
		t.Fatalf("route changed with the source policy: %q", r.Name)
	}
	if c.Scopes()[0] != "threads:read" || c.Sources()[1].Name != "x-api-key" {
		t.Fatalf("compiled policy aliases the source")
	}
}

func TestScopeMaskBytesDoesNotAllocate(t *testing.T) {
	c := mustCompile(t, samplePolicy())
	claim := []byte("threads:read agents:write unknown:scope:name:that:is:longer:than:thirty:two:bytes steer")
	if n := testing.AllocsPerRun(100, func() { c.ScopeMaskBytes(claim) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { c.AppendScopes(buf[:0], 1<<6-1) }); n != 0 {
		t.Fatalf("AppendScopes: %v allocations", n)
	}
}

func BenchmarkScopeMaskBytes(b *testing.B) {
	c := mustCompile(b, samplePolicy())
	claim := []byte("read steer threads:read")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.ScopeMaskBytes(claim)
	}
}
