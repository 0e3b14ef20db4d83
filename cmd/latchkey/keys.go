package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// apiKey is a key as the API returns it (API.md, "Key object").
type apiKey struct {
	ID          string     `json:"id"`
	Type        string     `json:"type"`
	Name        string     `json:"name"`
	Prefix      string     `json:"prefix"`
	Last4       string     `json:"last4"`
	Scopes      []string   `json:"scopes"`
	Org         string     `json:"org"`
	Agents      []string   `json:"agents"`
	Admin       bool       `json:"admin"`
	Imported    bool       `json:"imported"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	RotatedFrom *string    `json:"rotated_from"`
}

// state says whether the key works at now.
func (k *apiKey) state(now time.Time) string {
	switch {
	case k.RevokedAt != nil && !k.RevokedAt.After(now):
		return "revoked"
	case k.ExpiresAt != nil && !k.ExpiresAt.After(now):
		return "expired"
	case k.RevokedAt != nil:
		return "active (revoked at " + ts(*k.RevokedAt) + ")"
	default:
		return "active"
	}
}

// masked shows what of the secret may be shown: its prefix and last four characters.
func (k *apiKey) masked() string { return k.Prefix + "…" + k.Last4 }

// listFlag is a repeatable string flag; each value may also hold a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func (e *env) keys(ctx context.Context, args []string) error {
	sub, rest, err := subcommand("keys", args, "create", "list", "revoke", "rotate")
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		return e.keysCreate(ctx, rest)
	case "list":
		return e.keysList(ctx, rest)
	case "revoke":
		return e.keysRevoke(ctx, rest)
	case "rotate":
		return e.keysRotate(ctx, rest)
	default:
		fmt.Fprint(e.stdout, usageText)
		return nil
	}
}

func (e *env) keysCreate(ctx context.Context, args []string) error {
	fs := e.flagSet("keys create", "keys create --type T [--name N] [--scope S]... [--org O] [--agent A]... [--expires-in D]")
	cf := e.addClientFlags(fs)
	typ := fs.String("type", "", "key type, as the realm's policy names it (required)")
	name := fs.String("name", "", "a name for people")
	org := fs.String("org", "", "the org (customer) the key belongs to")
	expiresIn := fs.Duration("expires-in", 0, "lifetime, e.g. 720h (default: never expires)")
	var scopes, agents listFlag
	fs.Var(&scopes, "scope", "scope (repeatable, or comma-separated; default: the type's default scopes)")
	fs.Var(&agents, "agent", "agent id the key may act for (repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("keys create", pos); err != nil {
		return err
	}
	if *typ == "" {
		return usagef("keys create: --type is required")
	}
	if *expiresIn < 0 {
		return usagef("keys create: --expires-in must be positive")
	}
	c, err := e.client(cf)
	if err != nil {
		return err
	}
	req := map[string]any{"type": *typ}
	if *name != "" {
		req["name"] = *name
	}
	if len(scopes) > 0 {
		req["scopes"] = []string(scopes)
	}
	if *org != "" {
		req["org"] = *org
	}
	if len(agents) > 0 {
		req["agents"] = []string(agents)
	}
	if *expiresIn > 0 {
		req["expires_at"] = time.Now().Add(*expiresIn).UTC().Format(time.RFC3339)
	}
	var resp struct {
		Key    apiKey `json:"key"`
		Secret string `json:"secret"`
	}
	raw, err := c.call(ctx, "POST", "/v1/keys", req, &resp)
	if err != nil {
		return err
	}
	if cf.json {
		return e.printJSON(raw)
	}
	fmt.Fprintf(e.stdout, "Created key %s.\n", resp.Key.ID)
	if err := e.printKey(&resp.Key); err != nil {
		return err
	}
	e.printSecret(resp.Secret)
	return nil
}

// printSecret shows a key's plaintext, the one time the API returns it.
func (e *env) printSecret(secret string) {
	fmt.Fprintf(e.stdout, "\nSecret (shown once; store it now, it cannot be retrieved again):\n  %s\n", secret)
}

func (e *env) printKey(k *apiKey) error {
	rotated := ""
	if k.RotatedFrom != nil {
		rotated = *k.RotatedFrom
	}
	return fields(e.stdout, "  ",
		"id", k.ID, "type", k.Type, "name", k.Name, "key", k.masked(),
		"scopes", strings.Join(k.Scopes, " "), "org", k.Org, "agents", strings.Join(k.Agents, " "),
		"state", k.state(time.Now()), "created", ts(k.CreatedAt), "expires", tsp(k.ExpiresAt),
		"rotated from", rotated)
}

func (e *env) keysList(ctx context.Context, args []string) error {
	fs := e.flagSet("keys list", "keys list [--type T] [--org O] [--include-revoked] [--admin]")
	cf := e.addClientFlags(fs)
	typ := fs.String("type", "", "only keys of this type")
	org := fs.String("org", "", "only keys of this org")
	namePrefix := fs.String("name-prefix", "", "only keys whose name starts with this")
	includeRevoked := fs.Bool("include-revoked", false, "also list revoked keys")
	admin := fs.Bool("admin", false, "list only admin keys (default: every key)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("keys list", pos); err != nil {
		return err
	}
	c, err := e.client(cf)
	if err != nil {
		return err
	}
	q := url.Values{}
	setIf := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	setIf("type", *typ)
	setIf("org", *org)
	setIf("name_prefix", *namePrefix)
	if *includeRevoked {
		q.Set("include_revoked", "true")
	}
	if *admin {
		q.Set("admin", "true")
	}
	q.Set("limit", "1000")

	// Every page, following next_cursor.
	var keys []json.RawMessage
	for {
		var page struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor string            `json:"next_cursor"`
		}
		if _, err := c.call(ctx, "GET", "/v1/keys?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		keys = append(keys, page.Data...)
		if page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if cf.json {
		if keys == nil {
			keys = []json.RawMessage{}
		}
		data, err := json.Marshal(map[string]any{"data": keys})
		if err != nil {
			return err
		}
		return e.printJSON(data)
	}
	if len(keys) == 0 {
		fmt.Fprintln(e.stdout, "No keys.")
		return nil
	}
	t := newTable(e.stdout, "ID", "TYPE", "NAME", "KEY", "SCOPES", "ORG", "STATE", "CREATED", "EXPIRES")
	now := time.Now()
	for _, raw := range keys {
		var k apiKey
		if err := json.Unmarshal(raw, &k); err != nil {
			return fmt.Errorf("GET /v1/keys: unexpected response: %w", err)
		}
		t.row(k.ID, k.Type, k.Name, k.masked(), strings.Join(k.Scopes, ","), k.Org, k.state(now), ts(k.CreatedAt), tsp(k.ExpiresAt))
	}
	return t.flush()
}

func (e *env) keysRevoke(ctx context.Context, args []string) error {
	fs := e.flagSet("keys revoke", "keys revoke <id>")
	cf := e.addClientFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("keys revoke", pos, "<id>"); err != nil {
		return err
	}
	c, err := e.client(cf)
	if err != nil {
		return err
	}
	var k apiKey
	raw, err := c.call(ctx, "POST", "/v1/keys/"+url.PathEscape(pos[0])+"/revoke", nil, &k)
	if err != nil {
		return err
	}
	if cf.json {
		return e.printJSON(raw)
	}
	fmt.Fprintf(e.stdout, "Revoked key %s.\n", k.ID)
	return e.printKey(&k)
}

func (e *env) keysRotate(ctx context.Context, args []string) error {
	fs := e.flagSet("keys rotate", "keys rotate <id> [--grace D]")
	cf := e.addClientFlags(fs)
	grace := fs.Duration("grace", 0, "how long the old key keeps working (0: revoked at once; at most 720h)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("keys rotate", pos, "<id>"); err != nil {
		return err
	}
	if *grace < 0 || *grace%time.Second != 0 {
		return usagef("keys rotate: --grace must be a non-negative whole number of seconds")
	}
	c, err := e.client(cf)
	if err != nil {
		return err
	}
	var resp struct {
		Key      apiKey `json:"key"`
		Secret   string `json:"secret"`
		Previous apiKey `json:"previous"`
	}
	body := map[string]any{"grace_seconds": int64(*grace / time.Second)}
	raw, err := c.call(ctx, "POST", "/v1/keys/"+url.PathEscape(pos[0])+"/rotate", body, &resp)
	if err != nil {
		return err
	}
	if cf.json {
		return e.printJSON(raw)
	}
	fmt.Fprintf(e.stdout, "Rotated key %s into %s.\n", resp.Previous.ID, resp.Key.ID)
	if resp.Previous.RevokedAt != nil {
		fmt.Fprintf(e.stdout, "The old key stops working at %s.\n", ts(*resp.Previous.RevokedAt))
	}
	if err := e.printKey(&resp.Key); err != nil {
		return err
	}
	e.printSecret(resp.Secret)
	return nil
}

var _ flag.Value = (*listFlag)(nil)
