package config_test

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/config"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func parse(t *testing.T, env map[string]string, args ...string) (config.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return config.FromEnvAndFlags(fs, args, envOf(env))
}

func TestDefaults(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.DataDir != "./latchkey-data" || c.LogLevel != "info" || c.ShutdownTimeout != 10*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	if got := c.StoreURL(); got != "sqlite:"+filepath.Join("latchkey-data", "latchkey.db") {
		t.Fatalf("StoreURL %q", got)
	}
	if got := c.SnapshotPath(); got != filepath.Join("latchkey-data", "snapshots") {
		t.Fatalf("SnapshotPath %q", got)
	}
	if c.S3.Bucket != "" || c.S3.PathStyle {
		t.Fatalf("S3 by default: %+v", c.S3)
	}
}

func TestEnvironmentThenFlagWins(t *testing.T) {
	env := map[string]string{
		"LATCHKEY_ADDR": "0.0.0.0:9000", "LATCHKEY_DATA_DIR": "/var/lib/latchkey",
		"LATCHKEY_DATABASE_URL": "postgres://u:pw@db/latchkey", "LATCHKEY_SNAPSHOT_DIR": "/srv/snap",
		"LATCHKEY_S3_BUCKET": "snaps", "LATCHKEY_S3_PREFIX": "p", "LATCHKEY_S3_ENDPOINT": "http://minio:9000",
		"LATCHKEY_S3_ACCESS_KEY": "AK", "LATCHKEY_S3_SECRET_KEY": "SK-very-secret", "AWS_REGION": "eu-west-1",
		"LATCHKEY_LOG_LEVEL": "debug",
	}
	c, err := parse(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "0.0.0.0:9000" || c.DataDir != "/var/lib/latchkey" || c.DatabaseURL != "postgres://u:pw@db/latchkey" ||
		c.SnapshotDir != "/srv/snap" || c.LogLevel != "debug" {
		t.Fatalf("from env: %+v", c)
	}
	if c.S3.Bucket != "snaps" || c.S3.Prefix != "p" || c.S3.Endpoint != "http://minio:9000" || c.S3.Region != "eu-west-1" ||
		c.S3.AccessKey != "AK" || c.S3.SecretKey != "SK-very-secret" || !c.S3.PathStyle {
		t.Fatalf("S3 from env: %+v", c.S3)
	}
	if c.StoreURL() != "postgres://u:pw@db/latchkey" {
		t.Fatalf("StoreURL %q", c.StoreURL())
	}

	c, err = parse(t, env, "--addr", "127.0.0.1:1", "--data-dir", "d", "--database-url", "sqlite:x.db",
		"--s3-bucket", "other", "--s3-region", "us-west-2", "--s3-path-style=false", "--log-level", "warn")
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:1" || c.DataDir != "d" || c.DatabaseURL != "sqlite:x.db" || c.S3.Bucket != "other" ||
		c.S3.Region != "us-west-2" || c.S3.PathStyle || c.LogLevel != "warn" || c.SnapshotDir != "/srv/snap" {
		t.Fatalf("flags over env: %+v", c)
	}
	// An empty flag value given explicitly still wins over the environment.
	if c, err := parse(t, env, "--s3-prefix", ""); err != nil || c.S3.Prefix != "" {
		t.Fatalf("--s3-prefix '': %v %q", err, c.S3.Prefix)
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	c, err := parse(t, map[string]string{
		"LATCHKEY_DATABASE_URL": "postgres://latchkey:db-password@db:5432/latchkey",
		"LATCHKEY_S3_BUCKET":    "b", "LATCHKEY_S3_ACCESS_KEY": "AKIAEXAMPLE", "LATCHKEY_S3_SECRET_KEY": "s3-secret-value",
	})
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("%v %+v %#v %s %s", c, c, c, c.String(), c.RedactedStoreURL())
	for _, secret := range []string{"db-password", "s3-secret-value"} {
		if strings.Contains(text, secret) {
			t.Fatalf("configuration text leaks %q: %s", secret, text)
		}
	}
	if !strings.Contains(text, "postgres://latchkey:xxxxx@db:5432/latchkey") {
		t.Fatalf("redacted URL missing: %s", text)
	}
}

func TestInvalidSettingsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		flag string
	}{
		{nil, []string{"--addr", ""}, "addr"},
		{map[string]string{"LATCHKEY_DATA_DIR": " "}, nil, "data-dir"},
		{nil, []string{"--database-url", "mysql://x"}, "database-url"},
		{nil, []string{"--s3-prefix", "p"}, "s3-prefix"},
		{map[string]string{"LATCHKEY_S3_ENDPOINT": "http://x"}, nil, "s3-endpoint"},
		{map[string]string{"LATCHKEY_S3_BUCKET": "b", "LATCHKEY_S3_ACCESS_KEY": "a"}, nil, "s3-bucket"},
		{map[string]string{"LATCHKEY_S3_PATH_STYLE": "maybe"}, nil, "s3-path-style"},
		{nil, []string{"--log-level", "trace"}, "log-level"},
	} {
		_, err := parse(t, tc.env, tc.args...)
		var ce *config.Error
		if !errors.Is(err, config.ErrConfig) || !errors.As(err, &ce) || ce.Flag != tc.flag {
			t.Fatalf("%v %v: %v, want an error on --%s", tc.env, tc.args, err, tc.flag)
		}
	}
	if _, err := parse(t, nil, "--no-such-flag"); err == nil || errors.Is(err, config.ErrConfig) {
		t.Fatalf("unknown flag: %v", err)
	}
	if _, err := parse(t, nil, "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}
