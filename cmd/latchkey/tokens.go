package main

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

func (e *env) tokens(ctx context.Context, args []string) error {
	sub, rest, err := subcommand("tokens", args, "mint")
	if err != nil {
		return err
	}
	if sub == "help" {
		fmt.Fprint(e.stdout, usageText)
		return nil
	}
	fs := e.flagSet("tokens mint", "tokens mint --session ID [--scope S]... [--ttl D] [--key-id key_…]")
	cf := e.addClientFlags(fs)
	session := fs.String("session", "", "session id the token is bound to (its sub claim; required)")
	ttl := fs.Duration("ttl", 0, "lifetime, whole seconds (default: the API's, 15m), capped by the realm's policy")
	keyID := fs.String("key-id", "", "API key the token is minted for (required with an admin key)")
	tokenOnly := fs.Bool("token-only", false, "print only the token (for scripts)")
	var scopes listFlag
	fs.Var(&scopes, "scope", "scope (repeatable, or comma-separated)")
	pos, err := parse(fs, rest)
	if err != nil {
		return err
	}
	if err := wantArgs("tokens mint", pos); err != nil {
		return err
	}
	if *session == "" {
		return usagef("tokens mint: --session is required")
	}
	if *ttl < 0 || *ttl%time.Second != 0 {
		return usagef("tokens mint: --ttl must be a positive whole number of seconds")
	}
	c, err := e.client(cf)
	if err != nil {
		return err
	}
	body := map[string]any{}
	if len(scopes) > 0 {
		body["scopes"] = []string(scopes)
	}
	if *ttl > 0 {
		body["ttl"] = int64(*ttl / time.Second)
	}
	if *keyID != "" {
		body["key_id"] = *keyID
	}
	var resp struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		JTI       string    `json:"jti"`
		KID       string    `json:"kid"`
	}
	raw, err := c.call(ctx, "POST", "/v1/sessions/"+url.PathEscape(*session)+"/client-tokens", body, &resp)
	if err != nil {
		return err
	}
	switch {
	case cf.json:
		return e.printJSON(raw)
	case *tokenOnly:
		_, err := fmt.Fprintln(e.stdout, resp.Token)
		return err
	}
	return fields(e.stdout, "", "token", resp.Token, "jti", resp.JTI, "kid", resp.KID, "expires", ts(resp.ExpiresAt))
}
