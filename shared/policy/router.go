package policy

import (
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/shared/internal/bytestr"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// Params holds what Match captured: the request's path parameters, percent-decoded, in the
// order they appear in the matched pattern. It is large (it carries a buffer for decoded
// segments), so keep one per goroutine and reuse it. Values point into the request path or
// into the Params and are valid until the next Match with the same Params.
type Params struct {
	n    int
	vals [limits.MaxPathSegments][]byte

	nseg int
	segs [limits.MaxPathSegments][]byte
	buf  [limits.MaxRequestPathBytes]byte
}

// Len returns the number of captured parameters.
func (ps *Params) Len() int { return ps.n }

// Get returns parameter i (CompiledRoute.SessionParam is such an index), or nil.
func (ps *Params) Get(i int) []byte {
	if i < 0 || i >= ps.n {
		return nil
	}
	return ps.vals[i]
}

// node is one segment position in the route trie. Each route's pattern is a path from the
// root; term lists the routes ending at the node, wild those ending with "*" after it.
type node struct {
	lits  []litEdge // sorted by seg
	param int32     // child for a {param} segment, or -1
	term  []int32   // route indices, declaration order
	wild  []int32
}

type litEdge struct {
	seg   string
	child int32
}

func (c *Compiled) buildTrie(pats []pattern) {
	c.nodes = []node{{param: -1}}
	for ri, pat := range pats {
		n := int32(0)
		for _, s := range pat.segs {
			switch s.kind {
			case segWild:
				c.nodes[n].wild = append(c.nodes[n].wild, int32(ri))
				n = -1
			case segParam:
				if c.nodes[n].param < 0 {
					c.nodes = append(c.nodes, node{param: -1})
					c.nodes[n].param = int32(len(c.nodes) - 1)
				}
				n = c.nodes[n].param
			case segLiteral:
				child := int32(-1)
				for _, e := range c.nodes[n].lits {
					if e.seg == s.text {
						child = e.child
					}
				}
				if child < 0 {
					c.nodes = append(c.nodes, node{param: -1})
					child = int32(len(c.nodes) - 1)
					c.nodes[n].lits = append(c.nodes[n].lits, litEdge{seg: s.text, child: child})
				}
				n = child
			}
			if n < 0 {
				break
			}
		}
		if n >= 0 {
			c.nodes[n].term = append(c.nodes[n].term, int32(ri))
		}
	}
	// Insertion sort rather than sort.Slice, which needs reflection (TinyGo).
	for i := range c.nodes {
		lits := c.nodes[i].lits
		for a := 1; a < len(lits); a++ {
			for b := a; b > 0 && lits[b].seg < lits[b-1].seg; b-- {
				lits[b], lits[b-1] = lits[b-1], lits[b]
			}
		}
	}
}

// Match finds the route for a request. path is the request path exactly as received (still
// percent-encoded, without the query string); ps receives the captured parameters and must
// not be nil.
//
// Among the routes whose methods admit method, the most specific pattern wins: patterns are
// compared segment by segment from the left, a literal beating a {param} beating a final "*";
// equally specific routes go to the first declared. A request's trailing slash is ignored,
// and literal segments are compared with the percent-decoded request segment. When no route
// matches, Match returns the unmatched route.
//
// ok is false when the path must not be routed at all, because an upstream that normalizes
// paths could act on a different path than the one matched: it does not start with "/", is
// longer than limits.MaxRequestPathBytes or has more than limits.MaxPathSegments segments,
// holds a "." or ".." segment, an empty segment ("//"), a backslash, a ';' (path parameters,
// which servlet containers strip), a percent-encoded '.', '/' or '\' (any case), a malformed
// or control-character escape, a raw control character, space, '?' or '#', or decodes to
// invalid UTF-8. The decision function denies such requests with ReasonPath.
//
// Match does not allocate.
func (c *Compiled) Match(method, path []byte, ps *Params) (*CompiledRoute, bool) {
	ps.n = 0
	if !ps.split(path) {
		return nil, false
	}
	if r := c.walk(0, 0, 0, method, ps); r >= 0 {
		return &c.routes[r], true
	}
	ps.n = 0
	return &c.unmatched, true
}

// walk searches the trie depth first in specificity order; a trie is a tree, so each node is
// visited at most once per request.
func (c *Compiled) walk(ni int32, depth, np int, method []byte, ps *Params) int32 {
	n := &c.nodes[ni]
	if depth == ps.nseg {
		if r := c.pick(n.term, method); r >= 0 {
			ps.n = np
			return r
		}
	} else {
		seg := ps.segs[depth]
		if child := findLit(n.lits, seg); child >= 0 {
			if r := c.walk(child, depth+1, np, method, ps); r >= 0 {
				return r
			}
		}
		if n.param >= 0 {
			ps.vals[np] = seg
			if r := c.walk(n.param, depth+1, np+1, method, ps); r >= 0 {
				return r
			}
		}
	}
	if r := c.pick(n.wild, method); r >= 0 {
		ps.n = np
		return r
	}
	return -1
}

func (c *Compiled) pick(routes []int32, method []byte) int32 {
	for _, r := range routes {
		if c.routes[r].allows(method) {
			return r
		}
	}
	return -1
}

func findLit(lits []litEdge, seg []byte) int32 {
	lo, hi := 0, len(lits)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch c := bytestr.Compare(seg, lits[mid].seg); {
		case c == 0:
			return lits[mid].child
		case c > 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return -1
}

// split checks path and cuts it into percent-decoded segments; false means refuse (see Match).
func (ps *Params) split(path []byte) bool {
	ps.nseg = 0
	if len(path) == 0 || path[0] != '/' || len(path) > limits.MaxRequestPathBytes {
		return false
	}
	buf := ps.buf[:0]
	for i := 1; i < len(path); {
		j := i
		for j < len(path) && path[j] != '/' {
			j++
		}
		seg := path[i:j]
		if len(seg) == 0 {
			// "//" inside the path; a single trailing "/" ends the loop before getting here.
			return false
		}
		if ps.nseg == limits.MaxPathSegments {
			return false
		}
		var ok bool
		if seg, buf, ok = decodeSegment(seg, buf); !ok {
			return false
		}
		ps.segs[ps.nseg] = seg
		ps.nseg++
		i = j + 1
	}
	return true
}

// decodeSegment checks one raw segment and returns it percent-decoded. Segments without
// escapes are returned as they are; others are decoded into buf's spare capacity.
func decodeSegment(seg, buf []byte) (out, rest []byte, ok bool) {
	escaped, high := false, false
	for i := 0; i < len(seg); i++ {
		switch c := seg[i]; {
		case c == '%':
			if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
				return nil, buf, false
			}
			v := unhex(seg[i+1])<<4 | unhex(seg[i+2])
			if v == '.' || v == '/' || v == '\\' || v < 0x20 || v == 0x7f {
				return nil, buf, false
			}
			high = high || v >= 0x80
			escaped = true
			i += 2
		case c <= 0x20 || c == 0x7f || c == '\\' || c == ';' || c == '?' || c == '#':
			return nil, buf, false
		case c >= 0x80:
			high = true
		}
	}
	if len(seg) <= 2 && seg[0] == '.' && (len(seg) == 1 || seg[1] == '.') {
		return nil, buf, false
	}
	if escaped {
		start := len(buf)
		for i := 0; i < len(seg); i++ {
			if seg[i] == '%' {
				buf = append(buf, unhex(seg[i+1])<<4|unhex(seg[i+2]))
				i += 2
			} else {
				buf = append(buf, seg[i])
			}
		}
		seg = buf[start:len(buf):len(buf)]
	}
	if high && !utf8.Valid(seg) {
		return nil, buf, false
	}
	return seg, buf, true
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
