package store

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// Bounds the store enforces beyond those in shared/limits. They keep malformed input from
// reaching the database, where it would surface as a driver error instead of ErrInvalid.
const (
	maxRealmBytes       = 63
	maxNameBytes        = 256
	maxLast4Bytes       = 4
	maxSealedBytes      = 64 << 10
	maxPolicyYAMLBytes  = 4 * limits.MaxPolicyBytes
	maxAuditTargetBytes = 1024
	maxAuditDetail      = 64
	maxAuditValueBytes  = 4096
)

// Public key sizes per algorithm: raw Ed25519, uncompressed P-256.
var publicKeySize = map[string]int{AlgEdDSA: 32, AlgES256: 65}

// text checks a string bound for a text column: valid UTF-8 without NUL (PostgreSQL refuses
// both), between min and max bytes.
func text(entity, field, s string, min, max int) error {
	switch {
	case len(s) < min && min == 1:
		return invalid(entity, field, "required")
	case len(s) < min || len(s) > max:
		return invalid(entity, field, "must be "+strconv.Itoa(min)+".."+strconv.Itoa(max)+" bytes")
	case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
		return invalid(entity, field, "must be UTF-8 without NUL")
	}
	return nil
}

func validRealm(entity, name string) error {
	if len(name) < 1 || len(name) > maxRealmBytes {
		return invalid(entity, "realm", "must match [a-z0-9-]{1,63}")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return invalid(entity, "realm", "must match [a-z0-9-]{1,63}")
		}
	}
	return nil
}

// validTime checks a required time; the year bound keeps microseconds within int64 and
// the value within PostgreSQL's timestamptz range.
func validTime(entity, field string, t time.Time) error {
	if t.IsZero() {
		return invalid(entity, field, "required")
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return invalid(entity, field, "year must be 1..9999")
	}
	return nil
}

func validOptTime(entity, field string, t *time.Time) error {
	if t == nil {
		return nil
	}
	return validTime(entity, field, *t)
}

func validList(entity, field string, l []string, maxLen, maxBytes int) error {
	if len(l) > maxLen {
		return invalid(entity, field, "at most "+strconv.Itoa(maxLen)+" entries")
	}
	for _, s := range l {
		if err := text(entity, field, s, 1, maxBytes); err != nil {
			return err
		}
	}
	return nil
}

func validKeyID(field, id string) error {
	if _, err := apikey.ParseID(id); err != nil {
		return invalid("key", field, "must be \"key_\" followed by 20 lowercase hex characters")
	}
	return nil
}

func validScopes(l []string) error {
	return validList("key", "scopes", l, limits.MaxScopes, limits.MaxScopeBytes)
}

func validKey(k *APIKey) error {
	if err := validRealm("key", k.Realm); err != nil {
		return err
	}
	if err := validKeyID("id", k.ID); err != nil {
		return err
	}
	if k.Hash == (apikey.Hash{}) {
		return invalid("key", "hash", "required")
	}
	if k.ID != k.Hash.ID().String() {
		return invalid("key", "id", "must be derived from the hash")
	}
	if err := text("key", "prefix", k.Prefix, 1, limits.MaxPrefixBytes); err != nil {
		return err
	}
	if err := text("key", "last4", k.Last4, 0, maxLast4Bytes); err != nil {
		return err
	}
	if err := text("key", "name", k.Name, 0, maxNameBytes); err != nil {
		return err
	}
	if err := text("key", "type", k.Type, 1, limits.MaxIDBytes); err != nil {
		return err
	}
	if err := validScopes(k.Scopes); err != nil {
		return err
	}
	if err := text("key", "org", k.Org, 0, limits.MaxIDBytes); err != nil {
		return err
	}
	if err := validList("key", "agents", k.Agents, limits.MaxAgentsPerKey, limits.MaxIDBytes); err != nil {
		return err
	}
	if err := validTime("key", "created_at", k.CreatedAt); err != nil {
		return err
	}
	if err := validOptTime("key", "expires_at", k.ExpiresAt); err != nil {
		return err
	}
	if err := validOptTime("key", "revoked_at", k.RevokedAt); err != nil {
		return err
	}
	if k.RotatedFrom != "" {
		return validKeyID("rotated_from", k.RotatedFrom)
	}
	return nil
}

func validSigningKey(k *SigningKey) error {
	if err := validRealm("signing_key", k.Realm); err != nil {
		return err
	}
	if err := text("signing_key", "kid", k.KID, 1, limits.MaxIDBytes); err != nil {
		return err
	}
	size, ok := publicKeySize[k.Alg]
	if !ok {
		return invalid("signing_key", "alg", "must be EdDSA or ES256")
	}
	if len(k.Public) != size {
		return invalid("signing_key", "public", "must be "+strconv.Itoa(size)+" bytes for "+k.Alg)
	}
	if len(k.PrivateSealed) > maxSealedBytes {
		return invalid("signing_key", "private_sealed", "too large")
	}
	if err := validTime("signing_key", "created_at", k.CreatedAt); err != nil {
		return err
	}
	if err := validOptTime("signing_key", "retired_at", k.RetiredAt); err != nil {
		return err
	}
	if err := validOptTime("signing_key", "not_after", k.NotAfter); err != nil {
		return err
	}
	if (k.RetiredAt == nil) != (k.NotAfter == nil) {
		return invalid("signing_key", "not_after", "set exactly when retired_at is")
	}
	if k.RetiredAt != nil && k.NotAfter.Before(*k.RetiredAt) {
		return invalid("signing_key", "not_after", "must not be before retired_at")
	}
	return nil
}

func validOrgState(s *OrgState) error {
	if err := validRealm("org_state", s.Realm); err != nil {
		return err
	}
	if err := text("org_state", "org", s.Org, 1, limits.MaxIDBytes); err != nil {
		return err
	}
	switch s.State {
	case OrgActive, OrgBudgetExhausted, OrgSuspended:
	default:
		return invalid("org_state", "state", "must be active, budget_exhausted or suspended")
	}
	return validTime("org_state", "updated_at", s.UpdatedAt)
}

func validPolicy(p *Policy) error {
	if err := validRealm("policy", p.Realm); err != nil {
		return err
	}
	if len(p.YAML) == 0 {
		return invalid("policy", "yaml", "required")
	}
	if len(p.YAML) > maxPolicyYAMLBytes {
		return invalid("policy", "yaml", "too large")
	}
	if err := text("policy", "created_by", p.CreatedBy, 0, limits.MaxIDBytes); err != nil {
		return err
	}
	return validTime("policy", "created_at", p.CreatedAt)
}

func validRevocation(r *Revocation) error {
	if err := validRealm("revocation", r.Realm); err != nil {
		return err
	}
	if r.Kind != RevokeJTI && r.Kind != RevokeSession {
		return invalid("revocation", "kind", "must be jti or session")
	}
	if err := text("revocation", "value", r.Value, 1, limits.MaxClaimBytes); err != nil {
		return err
	}
	if err := validTime("revocation", "until", r.Until); err != nil {
		return err
	}
	return validTime("revocation", "created_at", r.CreatedAt)
}

func validAudit(e *AuditEvent) error {
	if err := validRealm("audit_event", e.Realm); err != nil {
		return err
	}
	if err := validTime("audit_event", "at", e.At); err != nil {
		return err
	}
	if err := text("audit_event", "actor", e.Actor, 0, limits.MaxIDBytes); err != nil {
		return err
	}
	if err := text("audit_event", "action", e.Action, 1, limits.MaxIDBytes); err != nil {
		return err
	}
	if err := text("audit_event", "target", e.Target, 0, maxAuditTargetBytes); err != nil {
		return err
	}
	if len(e.Detail) > maxAuditDetail {
		return invalid("audit_event", "detail", "at most "+strconv.Itoa(maxAuditDetail)+" entries")
	}
	for k, v := range e.Detail {
		if err := text("audit_event", "detail", k, 1, limits.MaxIDBytes); err != nil {
			return err
		}
		if err := text("audit_event", "detail", v, 0, maxAuditValueBytes); err != nil {
			return err
		}
	}
	return nil
}

func pageLimit(entity string, p Page) (int, error) {
	switch {
	case p.Limit == 0:
		return DefaultLimit, nil
	case p.Limit < 0 || p.Limit > MaxLimit:
		return 0, invalid(entity, "limit", "must be 1..1000")
	}
	return p.Limit, nil
}

// norm is how a time is stored: UTC, microseconds, no monotonic reading.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func normPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := norm(*t)
	return &n
}

// nullTime is a nullable time argument.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return norm(*t)
}
