package snapshot

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"github.com/latchkeyhq/latchkey/shared/limits"
)

// tables are the org, scope-set and agent-set tables of a meta or delta object, as slices of
// the object. After readTables every accessor below is in bounds for every index it accepts.
type tables struct {
	nOrgs                 uint32
	orgEnds, orgStates    []byte // [nOrgs]u32 cumulative id ends, [nOrgs]u8
	orgBytes              []byte
	nScopes               uint32
	scopeSets             []byte // [nScopes]u64, strictly ascending
	nAgentSets            uint32
	agentSetEnds          []byte // [nAgentSets]u32 cumulative member counts
	nMembers              uint32
	memberEnds            []byte // [nMembers]u32 cumulative id ends
	agentBytes            []byte
	scopeUsed, agentsUsed []uint64 // bitmaps filled while validating keys
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// item returns item i of a list stored as cumulative u32 ends over blob.
func item(ends, blob []byte, i uint32) []byte {
	var start uint32
	if i > 0 {
		start = le32(ends[4*(i-1):])
	}
	return blob[start:le32(ends[4*i:])]
}

func readTables(r *reader, c *tableCounts) (tables, error) {
	var t tables
	var err error
	if c.orgs > maxTableCount || c.agentSets > maxTableCount {
		return t, fail(r.obj, "tables", "more than 2^31-1 orgs or agent sets", ErrTooLarge)
	}
	if c.scopes > maxScopeSets {
		return t, fail(r.obj, "scope sets", "more than 65536", ErrTooLarge)
	}
	t.nOrgs, t.nScopes, t.nAgentSets, t.nMembers = c.orgs, c.scopes, c.agentSets, c.members
	if t.orgEnds, err = r.section(c.orgs, 4, "org ends"); err != nil {
		return t, err
	}
	if t.orgStates, err = r.section(c.orgs, 1, "org states"); err != nil {
		return t, err
	}
	if t.orgBytes, err = r.section(c.orgBytes, 1, "org ids"); err != nil {
		return t, err
	}
	if t.scopeSets, err = r.section(c.scopes, 8, "scope sets"); err != nil {
		return t, err
	}
	if t.agentSetEnds, err = r.section(c.agentSets, 4, "agent set ends"); err != nil {
		return t, err
	}
	if t.memberEnds, err = r.section(c.members, 4, "agent id ends"); err != nil {
		return t, err
	}
	if t.agentBytes, err = r.section(c.agentBytes, 1, "agent ids"); err != nil {
		return t, err
	}
	if err := checkEnds(r.obj, "orgs", t.orgEnds, len(t.orgBytes)); err != nil {
		return t, err
	}
	for i := uint32(0); i < t.nOrgs; i++ {
		if t.orgStates[i] > OrgSuspended {
			return t, fail(r.obj, idx("orgs", int(i)), "unknown state "+strconv.Itoa(int(t.orgStates[i])), ErrCorrupt)
		}
		if i > 0 && bytes.Compare(t.orgID(i-1), t.orgID(i)) >= 0 {
			return t, fail(r.obj, idx("orgs", int(i)), "ids not in strictly ascending order", ErrCorrupt)
		}
	}
	for i := uint32(1); i < t.nScopes; i++ {
		if t.scope(uint16(i-1)) >= t.scope(uint16(i)) {
			return t, fail(r.obj, idx("scope sets", int(i)), "masks not in strictly ascending order", ErrCorrupt)
		}
	}
	if err := checkEnds(r.obj, "agent ids", t.memberEnds, len(t.agentBytes)); err != nil {
		return t, err
	}
	var prev uint32
	for i := uint32(0); i < t.nAgentSets; i++ {
		end := le32(t.agentSetEnds[4*i:])
		if end <= prev || end-prev > limits.MaxAgentsPerKey || end > t.nMembers {
			return t, fail(r.obj, idx("agent sets", int(i)), "set size out of range 1..MaxAgentsPerKey or past the member list", ErrCorrupt)
		}
		for j := prev + 1; j < end; j++ {
			if bytes.Compare(t.member(j-1), t.member(j)) >= 0 {
				return t, fail(r.obj, idx("agent sets", int(i)), "members not in strictly ascending order", ErrCorrupt)
			}
		}
		if i > 0 && t.compareSets(i-1, i) >= 0 {
			return t, fail(r.obj, idx("agent sets", int(i)), "sets not in strictly ascending order", ErrCorrupt)
		}
		prev = end
	}
	if prev != t.nMembers {
		return t, fail(r.obj, "agent sets", "sets do not cover the member list", ErrCorrupt)
	}
	t.scopeUsed = make([]uint64, (t.nScopes+63)/64)
	t.agentsUsed = make([]uint64, (t.nAgentSets+63)/64)
	return t, nil
}

// checkEnds validates cumulative ends of ids: each id 1..255 bytes, the last ending at blobLen.
func checkEnds(obj, field string, ends []byte, blobLen int) error {
	var prev uint32
	for i := 0; i+4 <= len(ends); i += 4 {
		e := le32(ends[i:])
		if e <= prev || e-prev > maxIDLen || uint64(e) > uint64(blobLen) {
			return fail(obj, idx(field, i/4), "id length out of range 1..255 or past the id bytes", ErrCorrupt)
		}
		prev = e
	}
	if uint64(prev) != uint64(blobLen) {
		return fail(obj, field, "ids do not cover the id bytes", ErrCorrupt)
	}
	return nil
}

// checkUsed refuses tables with a scope or agent set no key refers to: Build never writes one,
// and refusing them keeps the encoding canonical.
func (t *tables) checkUsed(obj string) error {
	for i := uint32(0); i < t.nScopes; i++ {
		if t.scopeUsed[i/64]&(1<<(i%64)) == 0 {
			return fail(obj, idx("scope sets", int(i)), "not used by any key", ErrCorrupt)
		}
	}
	for i := uint32(0); i < t.nAgentSets; i++ {
		if t.agentsUsed[i/64]&(1<<(i%64)) == 0 {
			return fail(obj, idx("agent sets", int(i)), "not used by any key", ErrCorrupt)
		}
	}
	t.scopeUsed, t.agentsUsed = nil, nil
	return nil
}

// checkKey validates the table indices of one key entry and marks the sets it uses.
func (t *tables) checkKey(e []byte) string {
	org, agents, scope := le32(e[20:]), le32(e[24:]), uint32(binary.LittleEndian.Uint16(e[28:]))
	if org >= t.nOrgs {
		return "org index out of range"
	}
	if agents > t.nAgentSets {
		return "agent set index out of range"
	}
	if scope >= t.nScopes {
		return "scope set index out of range"
	}
	t.scopeUsed[scope/64] |= 1 << (scope % 64)
	if agents > 0 {
		a := agents - 1
		t.agentsUsed[a/64] |= 1 << (a % 64)
	}
	return ""
}

func (t *tables) orgID(i uint32) []byte { return item(t.orgEnds, t.orgBytes, i) }

func (t *tables) member(j uint32) []byte { return item(t.memberEnds, t.agentBytes, j) }

func (t *tables) scope(i uint16) uint64 { return binary.LittleEndian.Uint64(t.scopeSets[8*uint32(i):]) }

// findOrg binary-searches the org table by id.
func (t *tables) findOrg(id []byte) (uint32, bool) {
	lo, hi := uint32(0), t.nOrgs
	for lo < hi {
		m := lo + (hi-lo)/2
		switch c := bytes.Compare(t.orgID(m), id); {
		case c == 0:
			return m, true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

// setRange returns the member indices [start, end) of agent set i (0-based).
func (t *tables) setRange(i uint32) (uint32, uint32) {
	var start uint32
	if i > 0 {
		start = le32(t.agentSetEnds[4*(i-1):])
	}
	return start, le32(t.agentSetEnds[4*i:])
}

func (t *tables) compareSets(a, b uint32) int {
	as, ae := t.setRange(a)
	bs, be := t.setRange(b)
	for as < ae && bs < be {
		if c := bytes.Compare(t.member(as), t.member(bs)); c != 0 {
			return c
		}
		as++
		bs++
	}
	switch {
	case as < ae:
		return 1
	case bs < be:
		return -1
	}
	return 0
}

// agentAllowed reports whether agent is in set (1-based; 0 is the empty set).
func (t *tables) agentAllowed(set uint32, agent []byte) bool {
	if set == 0 || set > t.nAgentSets {
		return false
	}
	lo, hi := t.setRange(set - 1)
	for lo < hi {
		m := lo + (hi-lo)/2
		switch c := bytes.Compare(t.member(m), agent); {
		case c == 0:
			return true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return false
}

// agents returns the members of set (1-based) as strings, for Contents.
func (t *tables) agents(set uint32) []string {
	if set == 0 {
		return nil
	}
	s, e := t.setRange(set - 1)
	out := make([]string, 0, e-s)
	for j := s; j < e; j++ {
		out = append(out, string(t.member(j)))
	}
	return out
}
