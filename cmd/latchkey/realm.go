package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// apiRealm is a realm as the API returns it.
type apiRealm struct {
	Name            string    `json:"name"`
	CreatedAt       time.Time `json:"created_at"`
	SnapshotVersion uint64    `json:"snapshot_version"`
	PolicyVersion   uint64    `json:"policy_version"`
}

func (e *env) realm(ctx context.Context, args []string) error {
	sub, rest := "show", args
	if len(args) > 0 && (args[0] == "show" || args[0] == "list" || args[0] == "create" || args[0] == "help") {
		sub, rest = args[0], args[1:]
	} else if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		return usagef("realm: unknown subcommand %q (want show, list or create)", args[0])
	}
	if sub == "help" {
		fmt.Fprint(e.stdout, usageText)
		return nil
	}
	synopsis := map[string]string{"show": "realm [show]", "list": "realm list", "create": "realm create <name>"}[sub]
	fs := e.flagSet("realm "+sub, synopsis)
	cf := e.addClientFlags(fs)
	pos, err := parse(fs, rest)
	if err != nil {
		return err
	}
	want := map[string][]string{"create": {"<name>"}}[sub]
	if err := wantArgs("realm "+sub, pos, want...); err != nil {
		return err
	}
	c, err := e.client(cf)
	if err != nil {
		return err
	}
	switch sub {
	case "show":
		var r apiRealm
		raw, err := c.call(ctx, "GET", "/v1/realm", nil, &r)
		if err != nil {
			return err
		}
		if cf.json {
			return e.printJSON(raw)
		}
		return fields(e.stdout, "", "realm", r.Name, "created", ts(r.CreatedAt),
			"snapshot version", strconv.FormatUint(r.SnapshotVersion, 10), "policy version", strconv.FormatUint(r.PolicyVersion, 10))
	case "list":
		var resp struct {
			Data []apiRealm `json:"data"`
		}
		raw, err := c.call(ctx, "GET", "/v1/realms", nil, &resp)
		if err != nil {
			return err
		}
		if cf.json {
			return e.printJSON(raw)
		}
		t := newTable(e.stdout, "NAME", "CREATED", "SNAPSHOT", "POLICY")
		for _, r := range resp.Data {
			t.row(r.Name, ts(r.CreatedAt), strconv.FormatUint(r.SnapshotVersion, 10), strconv.FormatUint(r.PolicyVersion, 10))
		}
		return t.flush()
	default: // create
		var resp struct {
			Realm    apiRealm `json:"realm"`
			AdminKey string   `json:"admin_key"`
		}
		raw, err := c.call(ctx, "POST", "/v1/realms", map[string]string{"name": pos[0]}, &resp)
		if err != nil {
			return err
		}
		if cf.json {
			return e.printJSON(raw)
		}
		fmt.Fprintf(e.stdout, "Created realm %s (default policy, Ed25519 signing key).\n", resp.Realm.Name)
		fmt.Fprintf(e.stdout, "\nAdmin key of realm %s (shown once; store it now, it cannot be retrieved again):\n  %s\n", resp.Realm.Name, resp.AdminKey)
		return nil
	}
}
