package api

import (
	"bytes"
	"context"
	_ "embed" // default-policy.yaml
	"errors"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/controlplane/policyfile"
	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// DefaultRealm is the realm created at first start; its admin keys may manage realms.
const DefaultRealm = "default"

// DefaultPolicy is the policy of realm "default" and of realms created without one.
//
//go:embed default-policy.yaml
var DefaultPolicy []byte

// Bootstrap prepares a fresh store: realm "default" with the default policy, an Ed25519
// signing key and an admin key holding "admin". It returns the admin key's plaintext only
// when it created the key now: that is the one moment it can be shown. On a store already
// bootstrapped it changes nothing. Each step is skipped when already done, so a start that
// failed halfway is completed by the next one; an admin key is created only if the realm never
// had one (a realm whose admin keys were all revoked stays locked, deliberately).
func Bootstrap(ctx context.Context, st store.Store, sealer *signer.Sealer, now time.Time) (adminKey string, created bool, err error) {
	if _, err := st.GetRealm(ctx, DefaultRealm); errors.Is(err, store.ErrNotFound) {
		if _, err := st.CreateRealm(ctx, DefaultRealm, now); err != nil && !errors.Is(err, store.ErrConflict) {
			return "", false, fmt.Errorf("api: bootstrap: %w", err)
		}
	} else if err != nil {
		return "", false, fmt.Errorf("api: bootstrap: %w", err)
	}
	return completeRealm(ctx, st, sealer, DefaultRealm, nil, now)
}

// CreateRealm creates a realm with policyYAML (nil: the default policy, renamed to the realm
// and with the realm as client-token audience), an Ed25519 signing key and an admin key
// holding "admin", whose plaintext it returns. An existing realm gives an error matching
// store.ErrConflict.
func CreateRealm(ctx context.Context, st store.Store, sealer *signer.Sealer, name string, policyYAML []byte, now time.Time) (adminKey string, err error) {
	if !validRealmName(name) {
		return "", &store.Error{Kind: store.ErrInvalid, Entity: "realm", Field: "name", Reason: "must be 1..63 characters of [a-z0-9-], starting with a letter"}
	}
	if _, err := st.CreateRealm(ctx, name, now); err != nil {
		return "", err
	}
	key, _, err := completeRealm(ctx, st, sealer, name, policyYAML, now)
	return key, err
}

// completeRealm adds to an existing realm whatever of policy, signing key and first admin
// key it lacks.
func completeRealm(ctx context.Context, st store.Store, sealer *signer.Sealer, name string, policyYAML []byte, now time.Time) (string, bool, error) {
	fail := func(step string, err error) (string, bool, error) {
		return "", false, fmt.Errorf("api: realm %q: %s: %w", name, step, err)
	}
	rl, err := st.GetRealm(ctx, name)
	if err != nil {
		return fail("read", err)
	}
	if rl.PolicyVersion == 0 {
		y := policyYAML
		if y == nil {
			if y, err = PolicyForRealm(name); err != nil {
				return fail("default policy", err)
			}
		}
		p, err := policyfile.Parse(y)
		if err != nil {
			return fail("policy", err)
		}
		if p.Realm != name {
			return fail("policy", fmt.Errorf("the policy names realm %q", p.Realm))
		}
		if err := checkRealmPolicy(p); err != nil {
			return fail("policy", err)
		}
		if _, err := st.PutPolicy(ctx, store.Policy{Realm: name, YAML: y, CreatedAt: now, CreatedBy: "bootstrap"}); err != nil {
			return fail("policy", err)
		}
	}
	if _, err := st.ActiveSigningKey(ctx, name); errors.Is(err, store.ErrNotFound) {
		k, err := signer.NewSigningKey(name, store.AlgEdDSA, now, sealer)
		if err != nil {
			return fail("signing key", err)
		}
		if _, err := st.CreateSigningKey(ctx, k); err != nil && !errors.Is(err, store.ErrConflict) {
			return fail("signing key", err)
		}
	} else if err != nil {
		return fail("signing key", err)
	}
	yes := true
	n, err := st.CountKeys(ctx, name, store.KeyFilter{Admin: &yes, IncludeRevoked: true})
	if err != nil {
		return fail("admin key", err)
	}
	if n > 0 {
		return "", false, nil
	}
	rec := store.APIKey{
		Realm: name, Name: "bootstrap", Type: AdminKeyType, Scopes: []string{ScopeAdmin},
		Agents: []string{}, Admin: true, CreatedAt: now,
	}
	key, err := generateKey(AdminKeySpec, &rec)
	if err != nil {
		return fail("admin key", err)
	}
	if _, err := st.CreateKey(ctx, rec); err != nil {
		return fail("admin key", err)
	}
	if _, err := st.AppendAudit(ctx, store.AuditEvent{
		Realm: name, At: now, Actor: "bootstrap", Action: "key.create", Target: rec.ID,
		Detail: map[string]string{"type": AdminKeyType, "scopes": ScopeAdmin, "admin": "true"},
	}); err != nil {
		return fail("audit", err)
	}
	return key.Reveal(), true, nil
}

// PolicyForRealm returns DefaultPolicy for realm name: the realm and the client-token
// audience set to name, comments kept.
func PolicyForRealm(name string) ([]byte, error) {
	if name == DefaultRealm {
		return bytes.Clone(DefaultPolicy), nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultPolicy, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("default policy is not a mapping")
	}
	set := func(m *yaml.Node, key, value string) bool {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode {
				m.Content[i+1].Value = value
				return true
			}
		}
		return false
	}
	root := doc.Content[0]
	if !set(root, "realm", name) {
		return nil, errors.New("default policy has no realm")
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "tokens" && root.Content[i+1].Kind == yaml.MappingNode {
			set(root.Content[i+1], "audience", name)
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
