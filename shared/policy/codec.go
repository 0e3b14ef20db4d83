package policy

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"

	"github.com/latchkeyhq/latchkey/shared/limits"
)

// The binary form of a Policy, carried in snapshots. It is canonical: one policy has exactly
// one encoding, so Encode(Decode(b)) == b and two control planes encoding the same policy
// publish the same bytes. See SPEC.md ("Policy encoding") for the layout.
const (
	// Magic starts every encoded policy.
	Magic = "LKPL"
	// FormatVersion is the encoding version that follows Magic.
	FormatVersion = 1
)

var (
	// ErrMalformed reports an encoding that is truncated, has trailing bytes, a length
	// that does not fit, a non-canonical value (a boolean other than 0 or 1, message keys out
	// of order), or more entries than the limits allow.
	ErrMalformed = errors.New("policy: malformed encoding")
	// ErrVersion reports an unknown magic or version.
	ErrVersion = errors.New("policy: unknown encoding magic or version")
	// ErrTooLarge reports an encoding larger than limits.MaxPolicyBytes.
	ErrTooLarge = errors.New("policy: encoding larger than limits.MaxPolicyBytes")
)

// Encode validates p and returns its canonical binary form. Nil and empty lists and maps
// encode alike (Decode returns nil for both).
func Encode(p *Policy) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	e := encoder{b: make([]byte, 0, 1024)}
	e.b = append(e.b, Magic...)
	e.b = append(e.b, FormatVersion)
	e.str(p.Realm)
	e.strs(p.Scopes)
	e.count(len(p.Credentials))
	for _, s := range p.Credentials {
		e.str(s.In)
		e.str(s.Name)
	}
	e.count(len(p.KeyTypes))
	for i := range p.KeyTypes {
		kt := &p.KeyTypes[i]
		e.str(kt.Name)
		e.str(kt.Prefix)
		e.str(kt.Format)
		e.strs(kt.ScopeCap)
		e.strs(kt.DefaultScopes)
		e.str(kt.RateClass)
		e.str(kt.Agents)
		e.str(kt.Label)
	}
	e.count(len(p.RateClasses))
	for _, rc := range p.RateClasses {
		e.str(rc.Name)
		e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(rc.PerSecond))
		e.b = binary.LittleEndian.AppendUint32(e.b, uint32(rc.Burst))
	}
	if t := p.Tokens; t != nil {
		e.boolean(true)
		e.str(t.Issuer)
		e.str(t.Audience)
		e.strs(t.Scopes)
		e.b = binary.LittleEndian.AppendUint64(e.b, uint64(t.MaxTTLSeconds))
		e.b = binary.LittleEndian.AppendUint64(e.b, uint64(t.LeewaySeconds))
		e.str(t.RateClass)
	} else {
		e.boolean(false)
	}
	e.str(p.AgentHeader)
	e.count(len(p.Routes))
	for i := range p.Routes {
		e.route(&p.Routes[i])
	}
	if p.Unmatched != nil {
		e.boolean(true)
		e.route(p.Unmatched)
	} else {
		e.boolean(false)
	}
	e.str(p.Challenge)
	e.count(len(p.Errors))
	for i := range p.Errors {
		s := &p.Errors[i]
		e.b = binary.LittleEndian.AppendUint16(e.b, uint16(s.Status))
		e.str(s.Message)
		keys := make([]string, 0, len(s.Messages))
		for k := range s.Messages {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		e.count(len(keys))
		for _, k := range keys {
			e.str(k)
			e.str(s.Messages[k])
		}
		e.str(s.Body)
		e.count(len(s.Headers))
		for _, h := range s.Headers {
			e.str(h.Name)
			e.str(h.Value)
		}
	}
	for _, f := range p.Identity.fields() {
		e.str(f.value)
	}
	if e.tooLong {
		// Validate bounds every string and list well below 64 KiB; this is a guard.
		return nil, ErrMalformed
	}
	if len(e.b) > limits.MaxPolicyBytes {
		return nil, ErrTooLarge
	}
	return e.b, nil
}

type encoder struct {
	b       []byte
	tooLong bool
}

func (e *encoder) count(n int) {
	if n > math.MaxUint16 {
		e.tooLong = true
	}
	e.b = binary.LittleEndian.AppendUint16(e.b, uint16(n))
}

func (e *encoder) str(s string) {
	e.count(len(s))
	e.b = append(e.b, s...)
}

func (e *encoder) strs(ss []string) {
	e.count(len(ss))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) boolean(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) route(r *Route) {
	e.str(r.Name)
	e.strs(r.Methods)
	e.str(r.Path)
	e.boolean(r.Public)
	e.strs(r.Scopes)
	e.str(r.Match)
	e.strs(r.Credentials)
	e.str(r.Session)
	e.boolean(r.QueryToken)
	e.str(r.Agent)
	e.str(r.DenyMessage)
}

// Decode parses an encoded policy strictly and validates it. On error it returns nil.
func Decode(b []byte) (*Policy, error) {
	if len(b) > limits.MaxPolicyBytes {
		return nil, ErrTooLarge
	}
	if len(b) < len(Magic)+1 || string(b[:len(Magic)]) != Magic || b[len(Magic)] != FormatVersion {
		return nil, ErrVersion
	}
	d := decoder{b: b[len(Magic)+1:]}
	p := &Policy{}
	p.Realm = d.str()
	p.Scopes = d.strs(limits.MaxScopes)
	if n := d.count(limits.MaxCredentialSources, 4); n > 0 {
		p.Credentials = make([]Source, n)
		for i := range p.Credentials {
			p.Credentials[i] = Source{In: d.str(), Name: d.str()}
		}
	}
	if n := d.count(limits.MaxKeyTypes, 16); n > 0 {
		p.KeyTypes = make([]KeyType, n)
		for i := range p.KeyTypes {
			kt := &p.KeyTypes[i]
			kt.Name = d.str()
			kt.Prefix = d.str()
			kt.Format = d.str()
			kt.ScopeCap = d.strs(limits.MaxScopes + 1)
			kt.DefaultScopes = d.strs(limits.MaxScopes + 1)
			kt.RateClass = d.str()
			kt.Agents = d.str()
			kt.Label = d.str()
		}
	}
	if n := d.count(limits.MaxKeyTypes, 14); n > 0 {
		p.RateClasses = make([]RateClass, n)
		for i := range p.RateClasses {
			rc := &p.RateClasses[i]
			rc.Name = d.str()
			rc.PerSecond = math.Float64frombits(d.u64())
			rc.Burst = int(d.u32())
		}
	}
	if d.boolean() {
		t := &TokenPolicy{}
		t.Issuer = d.str()
		t.Audience = d.str()
		t.Scopes = d.strs(limits.MaxScopes + 1)
		t.MaxTTLSeconds = int64(d.u64())
		t.LeewaySeconds = int64(d.u64())
		t.RateClass = d.str()
		p.Tokens = t
	}
	p.AgentHeader = d.str()
	if n := d.count(limits.MaxRoutes, routeMinBytes); n > 0 {
		p.Routes = make([]Route, n)
		for i := range p.Routes {
			d.route(&p.Routes[i])
		}
	}
	if d.boolean() {
		p.Unmatched = &Route{}
		d.route(p.Unmatched)
	}
	p.Challenge = d.str()
	if n := d.count(len(renderedStatuses), 10); n > 0 {
		p.Errors = make([]ErrorSpec, n)
		for i := range p.Errors {
			s := &p.Errors[i]
			s.Status = int(d.u16())
			s.Message = d.str()
			if m := d.count(int(numReasons), 4); m > 0 {
				s.Messages = make(map[string]string, m)
				prev := ""
				for j := 0; j < m; j++ {
					k, v := d.str(), d.str()
					if j > 0 && k <= prev {
						d.fail()
					}
					prev = k
					s.Messages[k] = v
				}
			}
			s.Body = d.str()
			if h := d.count(limits.MaxErrorHeaders, 4); h > 0 {
				s.Headers = make([]Header, h)
				for j := range s.Headers {
					s.Headers[j] = Header{Name: d.str(), Value: d.str()}
				}
			}
		}
	}
	id := &p.Identity
	id.Org, id.KeyID, id.KeyType, id.Scopes = d.str(), d.str(), d.str(), d.str()
	id.Agent, id.Session, id.Credential = d.str(), d.str(), d.str()
	if d.bad || len(d.b) != 0 {
		return nil, ErrMalformed
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// routeMinBytes is the smallest encoded route: nine length-prefixed fields and two booleans.
const routeMinBytes = 9*2 + 2

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) fail() {
	d.bad = true
	d.b = nil
}

func (d *decoder) take(n int) []byte {
	if d.bad || n > len(d.b) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// count reads a list length, refusing more than max entries or more than the remaining bytes
// could hold at minSize bytes each, so a forged count cannot make Decode allocate.
func (d *decoder) count(max, minSize int) int {
	n := int(d.u16())
	if d.bad || n > max || n*minSize > len(d.b) {
		d.fail()
		return 0
	}
	return n
}

func (d *decoder) str() string {
	n := int(d.u16())
	return string(d.take(n))
}

func (d *decoder) strs(max int) []string {
	n := d.count(max, 2)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (d *decoder) boolean() bool {
	v := d.take(1)
	if v == nil {
		return false
	}
	if v[0] > 1 {
		d.fail()
	}
	return v[0] == 1
}

func (d *decoder) route(r *Route) {
	r.Name = d.str()
	r.Methods = d.strs(limits.MaxRouteMethods)
	r.Path = d.str()
	r.Public = d.boolean()
	r.Scopes = d.strs(limits.MaxScopes + 1)
	r.Match = d.str()
	r.Credentials = d.strs(2)
	r.Session = d.str()
	r.QueryToken = d.boolean()
	r.Agent = d.str()
	r.DenyMessage = d.str()
}
