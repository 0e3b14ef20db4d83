package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/config"
	"github.com/latchkeyhq/latchkey/controlplane/publisher"
	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// apiStatus is the publisher status the API returns.
type apiStatus struct {
	Version     uint64    `json:"version"`
	Full        bool      `json:"full"`
	BaseVersion uint64    `json:"base_version"`
	PublishedAt time.Time `json:"published_at"`
	ChangeSeq   uint64    `json:"change_seq"`
	Keys        int       `json:"keys"`
	LagMS       *int64    `json:"lag_ms"`
	LastError   string    `json:"last_error"`
}

func (e *env) snapshot(ctx context.Context, args []string) error {
	sub, rest, err := subcommand("snapshot", args, "publish", "status", "inspect", "plugin-config")
	if err != nil {
		return err
	}
	switch sub {
	case "publish", "status":
		return e.snapshotAPI(ctx, sub, rest)
	case "inspect":
		return e.snapshotInspect(ctx, rest)
	case "plugin-config":
		return e.snapshotPluginConfig(ctx, rest)
	default:
		fmt.Fprint(e.stdout, usageText)
		return nil
	}
}

func (e *env) snapshotAPI(ctx context.Context, sub string, args []string) error {
	fs := e.flagSet("snapshot "+sub, "snapshot "+sub)
	cf := e.addClientFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("snapshot "+sub, pos); err != nil {
		return err
	}
	c, err := e.client(cf)
	if err != nil {
		return err
	}
	method, path := "POST", "/v1/snapshots/publish"
	if sub == "status" {
		method, path = "GET", "/v1/snapshots/status"
	}
	var st apiStatus
	raw, err := c.call(ctx, method, path, nil, &st)
	if err != nil {
		return err
	}
	if cf.json {
		return e.printJSON(raw)
	}
	kind := "full"
	if !st.Full {
		kind = "delta over " + strconv.FormatUint(st.BaseVersion, 10)
	}
	kv := []string{"version", strconv.FormatUint(st.Version, 10) + " (" + kind + ")",
		"published", ts(st.PublishedAt), "change seq", strconv.FormatUint(st.ChangeSeq, 10), "keys", strconv.Itoa(st.Keys)}
	if st.LagMS != nil {
		kv = append(kv, "lag", (time.Duration(*st.LagMS) * time.Millisecond).String())
	}
	if st.LastError != "" {
		kv = append(kv, "last error", st.LastError)
	}
	return fields(e.stdout, "", kv...)
}

// snapshotSource reads a published manifest and its objects by Target name.
type snapshotSource interface {
	get(ctx context.Context, name string) ([]byte, error)
	String() string
}

type dirSource struct{ dir string }

func (d dirSource) String() string { return d.dir }
func (d dirSource) get(_ context.Context, name string) ([]byte, error) {
	path := filepath.Join(d.dir, filepath.FromSlash(name))
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f, path)
}

type httpSource struct {
	base   string
	client *http.Client
}

func (h httpSource) String() string { return h.base }
func (h httpSource) get(ctx context.Context, name string) ([]byte, error) {
	u := h.base + "/" + name
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("GET %s: %w", u, fs.ErrNotExist)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %s", u, resp.Status)
	}
	return readBounded(resp.Body, u)
}

type targetSource struct {
	t    publisher.Target
	name string
}

func (s targetSource) String() string { return s.name }
func (s targetSource) get(ctx context.Context, name string) ([]byte, error) {
	data, _, err := s.t.Get(ctx, name)
	return data, err
}

// maxObjectBytes bounds one snapshot object: a shard of ShardTargetKeys keys is 8 MiB, and
// the largest realm the limits allow splits into at most that many keys per shard, with
// room for the meta object's tables.
const maxObjectBytes = 256 << 20

func readBounded(r io.Reader, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxObjectBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxObjectBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", what, maxObjectBytes)
	}
	return data, nil
}

// inspectReport is `snapshot inspect --json`.
type inspectReport struct {
	Source      string         `json:"source"`
	Realm       string         `json:"realm"`
	Version     uint64         `json:"version"`
	BaseVersion uint64         `json:"base_version"`
	IssuedAt    string         `json:"issued_at"`
	ExpiresAt   string         `json:"expires_at"`
	Expired     bool           `json:"expired"`
	TrustedKey  string         `json:"trusted_key"`
	Objects     []inspectObj   `json:"objects"`
	Counts      map[string]int `json:"counts"`
}

type inspectObj struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256"`
}

// sourceFlags are the flags that say where a published snapshot is read from and which
// manifest keys to trust (snapshot inspect, snapshot plugin-config).
type sourceFlags struct {
	dir, base, bucket, prefix, endpoint, region, realm, dataDir *string
	trusted                                                     listFlag
}

func addSourceFlags(fset *flag.FlagSet) *sourceFlags {
	f := &sourceFlags{
		dir:      fset.String("dir", "", "snapshot directory (default: $LATCHKEY_SNAPSHOT_DIR, else <data-dir>/snapshots)"),
		base:     fset.String("url", "", "HTTP base URL snapshots are served from (a CDN or static server)"),
		bucket:   fset.String("s3-bucket", "", "S3 bucket snapshots are published to [$LATCHKEY_S3_BUCKET]"),
		prefix:   fset.String("s3-prefix", "", "key prefix in the bucket [$LATCHKEY_S3_PREFIX]"),
		endpoint: fset.String("s3-endpoint", "", "S3-compatible server URL [$LATCHKEY_S3_ENDPOINT]"),
		region:   fset.String("s3-region", "", "bucket region [$LATCHKEY_S3_REGION]"),
		realm:    fset.String("realm", "default", "realm whose snapshot to read"),
		dataDir:  fset.String("data-dir", "", "control plane data directory, for its manifest key and snapshots [$LATCHKEY_DATA_DIR]"),
	}
	fset.Var(&f.trusted, "trusted-key", "pinned manifest `key`, ed25519:… as latchkey serve prints it (repeatable; default: the data dir's manifest key)")
	return f
}

// resolve returns where to read from (an explicit flag, else where `latchkey serve` with this
// environment publishes) and what to trust (pinned keys, else the control plane's own manifest
// key), with the keys' texts.
func (e *env) resolve(ctx context.Context, cmd string, f *sourceFlags) (snapshotSource, []snapshot.TrustedKey, []string, error) {
	if *f.dir != "" && *f.base != "" {
		return nil, nil, nil, usagef("%s: --dir and --url exclude each other", cmd)
	}
	if *f.dataDir == "" {
		*f.dataDir = e.getenv("LATCHKEY_DATA_DIR")
	}
	if *f.dataDir == "" {
		*f.dataDir = config.DefaultDataDir
	}
	var src snapshotSource
	envOr := func(flagVal, name string) string {
		if flagVal != "" {
			return flagVal
		}
		return e.getenv(name)
	}
	switch {
	case *f.base != "":
		u, err := url.Parse(*f.base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, nil, nil, usagef("%s: --url %q: want http(s)://…", cmd, *f.base)
		}
		src = httpSource{base: strings.TrimRight(*f.base, "/"), client: &http.Client{Timeout: 60 * time.Second}}
	case *f.dir != "":
		src = dirSource{*f.dir}
	case envOr(*f.bucket, "LATCHKEY_S3_BUCKET") != "":
		cfg := publisher.S3Config{
			Bucket: envOr(*f.bucket, "LATCHKEY_S3_BUCKET"), Prefix: envOr(*f.prefix, "LATCHKEY_S3_PREFIX"),
			Endpoint:  envOr(*f.endpoint, "LATCHKEY_S3_ENDPOINT"),
			Region:    firstNonEmpty(*f.region, e.getenv("LATCHKEY_S3_REGION"), e.getenv("AWS_REGION"), e.getenv("AWS_DEFAULT_REGION")),
			AccessKey: e.getenv(config.EnvS3AccessKey), SecretKey: e.getenv(config.EnvS3SecretKey),
		}
		cfg.PathStyle = cfg.Endpoint != ""
		if v := e.getenv(config.EnvS3PathStyle); v != "" {
			cfg.PathStyle, _ = strconv.ParseBool(v)
		}
		t, err := publisher.NewS3Target(ctx, cfg)
		if err != nil {
			return nil, nil, nil, err
		}
		src = targetSource{t: t, name: "s3://" + cfg.Bucket + "/" + cfg.Prefix}
	default:
		d := e.getenv("LATCHKEY_SNAPSHOT_DIR")
		if d == "" {
			d = filepath.Join(*f.dataDir, config.SnapshotsDir)
		}
		src = dirSource{d}
	}

	var keys []snapshot.TrustedKey
	var keyTexts []string
	for _, t := range f.trusted {
		k, err := signer.ParseTrustedKey(strings.TrimSpace(t))
		if err != nil {
			return nil, nil, nil, usagef("%s: --trusted-key: %v", cmd, err)
		}
		keys = append(keys, k)
		keyTexts = append(keyTexts, signer.TrustedText(k))
	}
	if len(keys) == 0 {
		mk, err := e.localManifestKey(*f.dataDir)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("no trusted key: pass --trusted-key ed25519:… (as `latchkey serve` prints it), or --data-dir of the control plane: %w", err)
		}
		keys = []snapshot.TrustedKey{mk.Trusted()}
		keyTexts = []string{mk.PublicText()}
	}
	return src, keys, keyTexts, nil
}

func (e *env) snapshotInspect(ctx context.Context, args []string) error {
	fset := e.flagSet("snapshot inspect", "snapshot inspect [--dir D | --url U | --s3-bucket B] [--realm R] [--trusted-key K]... [--data-dir D]")
	sf := addSourceFlags(fset)
	asJSON := fset.Bool("json", false, "print a JSON report")
	pos, err := parse(fset, args)
	if err != nil {
		return err
	}
	if err := wantArgs("snapshot inspect", pos); err != nil {
		return err
	}
	src, keys, keyTexts, err := e.resolve(ctx, "snapshot inspect", sf)
	if err != nil {
		return err
	}
	report, _, err := inspect(ctx, src, *sf.realm, keys, time.Now())
	if err != nil {
		return err
	}
	report.TrustedKey = strings.Join(keyTexts, " ")
	if *asJSON {
		data, err := json.Marshal(report)
		if err != nil {
			return err
		}
		if err := e.printJSON(data); err != nil {
			return err
		}
	} else if err := e.printInspect(report); err != nil {
		return err
	}
	if report.Expired {
		return fmt.Errorf("manifest of realm %s expired at %s: edges refuse it (is the control plane publishing?)", report.Realm, report.ExpiresAt)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// localManifestKey loads the manifest key a control plane with this data dir and
// environment signs with, creating nothing.
func (e *env) localManifestKey(dataDir string) (*signer.ManifestKey, error) {
	master, err := signer.LoadMasterKey(e.getenv, dataDir, false)
	if err != nil {
		return nil, err
	}
	sealer, err := signer.NewSealer(master)
	clear(master)
	if err != nil {
		return nil, err
	}
	return signer.LoadManifestKey(e.getenv, dataDir, sealer, false)
}

// published is a snapshot as read from a store: the signed manifest and the objects it names.
type published struct {
	manifest []byte
	objects  [][]byte
	delta    []byte
}

// inspect reads a realm's manifest from src, verifies its signature under keys, fetches
// every object, checks every digest and the structure (snapshot.Open), and reports, with
// what it read.
func inspect(ctx context.Context, src snapshotSource, realm string, keys []snapshot.TrustedKey, now time.Time) (*inspectReport, *published, error) {
	manifestName := publisher.ManifestName(realm)
	data, err := src.get(ctx, manifestName)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, publisher.ErrNotFound) {
			return nil, nil, fmt.Errorf("no manifest for realm %s in %s (nothing published yet, or another --realm/--dir?)", realm, src)
		}
		return nil, nil, fmt.Errorf("read manifest %s from %s: %w", manifestName, src, err)
	}
	if len(data) > limits.MaxManifestBytes {
		return nil, nil, fmt.Errorf("manifest %s in %s: %d bytes, over the %d-byte limit", manifestName, src, len(data), limits.MaxManifestBytes)
	}
	m, err := snapshot.VerifyManifest(data, keys, hostcrypto.Std)
	if err != nil {
		if errors.Is(err, snapshot.ErrSignature) {
			return nil, nil, fmt.Errorf("manifest %s in %s REFUSED: its signature does not verify under the trusted key(s); it was tampered with or signed by another control plane", manifestName, src)
		}
		return nil, nil, fmt.Errorf("manifest %s in %s REFUSED: %w", manifestName, src, err)
	}
	if m.Realm != realm {
		return nil, nil, fmt.Errorf("manifest %s in %s REFUSED: it names realm %q", manifestName, src, m.Realm)
	}
	report := &inspectReport{
		Source: src.String(), Realm: m.Realm, Version: m.Version, BaseVersion: m.BaseVersion,
		IssuedAt: unixTS(m.IssuedAt), ExpiresAt: unixTS(m.ExpiresAt), Expired: m.CheckFresh(now.Unix(), 0) != nil,
	}
	objects := make([][]byte, len(m.Objects))
	for i, ref := range m.Objects {
		kind := "keys"
		if i == 0 {
			kind = "meta"
		}
		if objects[i], err = fetchObject(ctx, src, realm, ref); err != nil {
			return nil, nil, err
		}
		report.Objects = append(report.Objects, inspectObj{Name: ref.Name, Kind: kind, Size: ref.Size, SHA256: hex.EncodeToString(ref.SHA256[:])})
	}
	var delta []byte
	if m.Delta != nil {
		if delta, err = fetchObject(ctx, src, realm, *m.Delta); err != nil {
			return nil, nil, err
		}
		report.Objects = append(report.Objects, inspectObj{Name: m.Delta.Name, Kind: "delta", Size: m.Delta.Size, SHA256: hex.EncodeToString(m.Delta.SHA256[:])})
	}
	v, err := snapshot.Open(m, objects, delta, hostcrypto.Std)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s version %d REFUSED: %w", realm, m.Version, err)
	}
	st := v.Stats()
	report.Counts = map[string]int{
		"keys": st.Keys, "base_keys": st.BaseKeys, "orgs": st.Orgs, "signing_keys": st.SigningKeys,
		"revoked_tokens": st.RevokedTokens, "revoked_sessions": st.RevokedSessions,
		"shards": len(st.ShardKeys), "policy_bytes": st.PolicyBytes,
	}
	if d := st.Delta; d != nil {
		report.Counts["delta_add_keys"] = d.AddKeys
		report.Counts["delta_remove_keys"] = d.RemoveKeys
		report.Counts["delta_orgs"] = d.Orgs
		report.Counts["delta_revoked_tokens"] = d.RevokedTokens
		report.Counts["delta_revoked_sessions"] = d.RevokedSessions
	}
	return report, &published{manifest: data, objects: objects, delta: delta}, nil
}

// fetchObject reads one object; its digest is checked by snapshot.Open, but a wrong size is
// reported here already, naming the object.
func fetchObject(ctx context.Context, src snapshotSource, realm string, ref snapshot.ObjectRef) ([]byte, error) {
	name := publisher.ObjectName(realm, ref.Name)
	data, err := src.get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("object %s (named by the manifest) in %s: %w", name, src, err)
	}
	if uint64(len(data)) != ref.Size {
		return nil, fmt.Errorf("object %s in %s REFUSED: %d bytes, the manifest says %d", name, src, len(data), ref.Size)
	}
	return data, nil
}

func (e *env) printInspect(r *inspectReport) error {
	version := strconv.FormatUint(r.Version, 10) + " (full)"
	if r.BaseVersion != 0 {
		version = strconv.FormatUint(r.Version, 10) + " (delta over full snapshot " + strconv.FormatUint(r.BaseVersion, 10) + ")"
	}
	expires := r.ExpiresAt
	if r.Expired {
		expires += "  EXPIRED"
	}
	if err := fields(e.stdout, "", "source", r.Source, "realm", r.Realm, "version", version,
		"issued", r.IssuedAt, "expires", expires, "signature", "valid under "+r.TrustedKey); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "objects (every digest checked):")
	t := newTable(e.stdout, "  NAME", "KIND", "SIZE", "SHA-256")
	for _, o := range r.Objects {
		t.row("  "+o.Name, o.Kind, byteSize(o.Size), o.SHA256)
	}
	if err := t.flush(); err != nil {
		return err
	}
	c := r.Counts
	keys := strconv.Itoa(c["keys"])
	if r.BaseVersion != 0 {
		keys += fmt.Sprintf(" (base %d, delta +%d -%d)", c["base_keys"], c["delta_add_keys"], c["delta_remove_keys"])
	}
	revTok, revSess := strconv.Itoa(c["revoked_tokens"]), strconv.Itoa(c["revoked_sessions"])
	if r.BaseVersion != 0 {
		revTok += fmt.Sprintf(" (+%d in delta)", c["delta_revoked_tokens"])
		revSess += fmt.Sprintf(" (+%d in delta)", c["delta_revoked_sessions"])
	}
	return fields(e.stdout, "", "keys", keys, "orgs", strconv.Itoa(c["orgs"]), "signing keys", strconv.Itoa(c["signing_keys"]),
		"revoked tokens", revTok, "revoked sessions", revSess,
		"key shards", strconv.Itoa(c["shards"]), "policy", byteSize(uint64(c["policy_bytes"])))
}
