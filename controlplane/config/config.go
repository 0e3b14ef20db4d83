// Package config turns the command line and LATCHKEY_* environment into a Config, and a
// Config into a running control plane: store, master and manifest keys, bootstrap, snapshot
// publisher and HTTP API, wired the same way for `latchkey serve`, `latchkey dev` and tests.
package config

import (
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/publisher"
)

// Defaults.
const (
	DefaultAddr            = "127.0.0.1:8080"
	DefaultDataDir         = "./latchkey-data"
	DefaultShutdownTimeout = 10 * time.Second
	// DatabaseFile and SnapshotsDir are the SQLite database and snapshot directory inside the
	// data directory when nothing else is configured.
	DatabaseFile = "latchkey.db"
	SnapshotsDir = "snapshots"
)

// Config is everything `latchkey serve` is configured with. Secrets (the master key, S3
// credentials) are read from the environment only, never from flags, which other users of
// the host can read in the process list.
type Config struct {
	Addr        string // listen address
	DataDir     string // SQLite database, master.key, manifest.key, snapshots/
	DatabaseURL string // "postgres://…" (or "sqlite:…"); empty: SQLite in DataDir
	SnapshotDir string // empty: DataDir/snapshots; ignored when S3Bucket is set
	S3          publisher.S3Config
	LogLevel    string // debug, info, warn, error
	// ShutdownTimeout bounds the graceful shutdown: requests in flight get this long.
	ShutdownTimeout time.Duration
}

// ErrConfig: a flag or environment variable has a value that cannot work.
var ErrConfig = errors.New("config: invalid configuration")

// Error names the flag (and its environment variable) at fault.
type Error struct {
	Flag, Env, Reason string
}

func (e *Error) Error() string {
	s := "config: --" + e.Flag
	if e.Env != "" {
		s += " (" + e.Env + ")"
	}
	return s + ": " + e.Reason
}

func (e *Error) Unwrap() error { return ErrConfig }

// option is one setting available as a flag and an environment variable.
type option struct {
	flag, env, def, usage string
	target                func(*Config) *string
}

var options = []option{
	{"addr", "LATCHKEY_ADDR", DefaultAddr, "listen address (host:port)", func(c *Config) *string { return &c.Addr }},
	{"data-dir", "LATCHKEY_DATA_DIR", DefaultDataDir, "directory for the SQLite database, master.key, manifest.key and snapshots/", func(c *Config) *string { return &c.DataDir }},
	{"database-url", "LATCHKEY_DATABASE_URL", "", "postgres://… for PostgreSQL (default: SQLite file latchkey.db in the data dir)", func(c *Config) *string { return &c.DatabaseURL }},
	{"snapshot-dir", "LATCHKEY_SNAPSHOT_DIR", "", "directory snapshots are published into (default: <data-dir>/snapshots)", func(c *Config) *string { return &c.SnapshotDir }},
	{"s3-bucket", "LATCHKEY_S3_BUCKET", "", "publish snapshots to this S3 bucket instead of a directory", func(c *Config) *string { return &c.S3.Bucket }},
	{"s3-prefix", "LATCHKEY_S3_PREFIX", "", "key prefix inside the bucket", func(c *Config) *string { return &c.S3.Prefix }},
	{"s3-endpoint", "LATCHKEY_S3_ENDPOINT", "", "S3-compatible server URL (default: AWS)", func(c *Config) *string { return &c.S3.Endpoint }},
	{"s3-region", "LATCHKEY_S3_REGION", "", "bucket region (default: AWS_REGION, else us-east-1)", func(c *Config) *string { return &c.S3.Region }},
	{"log-level", "LATCHKEY_LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }},
}

// Environment-only settings.
const (
	EnvS3AccessKey = "LATCHKEY_S3_ACCESS_KEY"
	EnvS3SecretKey = "LATCHKEY_S3_SECRET_KEY"
	EnvS3PathStyle = "LATCHKEY_S3_PATH_STYLE"
)

// FromEnvAndFlags defines the serve flags on fs, parses args, and fills every setting from
// its flag when given, else from its LATCHKEY_* variable when set, else its default: a flag
// always wins. getenv nil means os.Getenv. Parse errors (flag.ErrHelp included) are
// returned as fs.Parse returns them.
func FromEnvAndFlags(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var c Config
	values := make([]string, len(options))
	for i, o := range options {
		usage := o.usage + " [$" + o.env + "]"
		fs.StringVar(&values[i], o.flag, o.def, usage)
	}
	pathStyle := fs.Bool("s3-path-style", false, "address the bucket as a path, as most S3-compatible servers need (default: true when --s3-endpoint is set) [$"+EnvS3PathStyle+"]")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for i, o := range options {
		v := values[i]
		if !set[o.flag] {
			if e := getenv(o.env); e != "" {
				v = e
			}
		}
		*o.target(&c) = strings.TrimSpace(v)
	}

	c.S3.AccessKey = getenv(EnvS3AccessKey)
	c.S3.SecretKey = getenv(EnvS3SecretKey)
	switch {
	case set["s3-path-style"]:
		c.S3.PathStyle = *pathStyle
	case getenv(EnvS3PathStyle) != "":
		b, err := strconv.ParseBool(getenv(EnvS3PathStyle))
		if err != nil {
			return Config{}, &Error{Flag: "s3-path-style", Env: EnvS3PathStyle, Reason: "not a boolean"}
		}
		c.S3.PathStyle = b
	default:
		c.S3.PathStyle = c.S3.Endpoint != ""
	}
	if c.S3.Region == "" {
		c.S3.Region = firstNonEmpty(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
	}
	c.ShutdownTimeout = DefaultShutdownTimeout
	return c, c.Validate()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return &Error{Flag: "addr", Env: "LATCHKEY_ADDR", Reason: "must not be empty"}
	}
	if c.DataDir == "" {
		return &Error{Flag: "data-dir", Env: "LATCHKEY_DATA_DIR", Reason: "must not be empty"}
	}
	if u := c.DatabaseURL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") && !strings.HasPrefix(u, "sqlite:") {
		return &Error{Flag: "database-url", Env: "LATCHKEY_DATABASE_URL", Reason: "want postgres://…, postgresql://… or sqlite:…"}
	}
	if c.S3.Bucket == "" {
		for _, o := range []struct{ flag, env, v string }{
			{"s3-prefix", "LATCHKEY_S3_PREFIX", c.S3.Prefix}, {"s3-endpoint", "LATCHKEY_S3_ENDPOINT", c.S3.Endpoint},
		} {
			if o.v != "" {
				return &Error{Flag: o.flag, Env: o.env, Reason: "set without --s3-bucket"}
			}
		}
	}
	if (c.S3.AccessKey == "") != (c.S3.SecretKey == "") {
		return &Error{Flag: "s3-bucket", Env: EnvS3AccessKey + ", " + EnvS3SecretKey, Reason: "access key and secret key go together"}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Flag: "log-level", Env: "LATCHKEY_LOG_LEVEL", Reason: "want debug, info, warn or error"}
	}
	return nil
}

// StoreURL is the URL store.Open is given.
func (c *Config) StoreURL() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return "sqlite:" + filepath.Join(c.DataDir, DatabaseFile)
}

// RedactedStoreURL is StoreURL with any password hidden, for logs.
func (c *Config) RedactedStoreURL() string { return redactURL(c.StoreURL()) }

// SnapshotPath is the directory snapshots are published into when no bucket is set.
func (c *Config) SnapshotPath() string {
	if c.SnapshotDir != "" {
		return c.SnapshotDir
	}
	return filepath.Join(c.DataDir, SnapshotsDir)
}

// String describes the configuration without its secrets (S3 credentials, database password).
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("addr=" + c.Addr + " data-dir=" + c.DataDir + " database=" + c.RedactedStoreURL())
	if c.S3.Bucket != "" {
		b.WriteString(" snapshots=s3://" + c.S3.Bucket + "/" + c.S3.Prefix)
		if c.S3.Endpoint != "" {
			b.WriteString(" s3-endpoint=" + c.S3.Endpoint)
		}
		if c.S3.AccessKey != "" {
			b.WriteString(" s3-credentials=static(redacted)")
		}
	} else {
		b.WriteString(" snapshots=" + c.SnapshotPath())
	}
	return b.String()
}

// GoString keeps %#v from printing the S3 secret.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }

// redactURL hides a password in a database URL ("postgres://u:secret@h/db" → "postgres://u:xxxxx@h/db").
func redactURL(u string) string {
	if !strings.Contains(u, "://") {
		return u
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)" // it might hold a password in a shape url cannot find
	}
	return parsed.Redacted()
}
