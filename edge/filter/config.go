package filter

import (
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// Config configures a Filter and its Decider. It is an immutable value: each With… method
// returns a changed copy.
type Config struct {
	trusted        []snapshot.TrustedKey
	wasm           []byte
	cacheDir       string
	poolSize       int
	now            func() time.Time
	maxStaleness   time.Duration
	tokenCacheSize int
	observe        func(*Result)
	recheck        time.Duration
	onCut          func(*Result)
}

// DefaultRecheckInterval is how often a Filter decides its open requests again when
// WithRecheckInterval does not say.
const DefaultRecheckInterval = time.Second

// NewConfig returns a configuration that pins the given manifest signing keys and decides
// with the native core. At least one key is needed before a snapshot can load.
func NewConfig(trusted ...snapshot.TrustedKey) Config {
	return Config{trusted: append([]snapshot.TrustedKey(nil), trusted...)}
}

// WithWasm decides with the verifier module (wasm/verifier, accelerated or portable, built
// by TinyGo or standard Go) hosted by wazero instead of the native core. The bytes must not
// change afterwards.
func (c Config) WithWasm(module []byte) Config {
	c.wasm = module
	return c
}

// WithCompilationCacheDir sets where wazero keeps compiled modules across restarts. The
// default is latchkey/wazero under os.UserCacheDir.
func (c Config) WithCompilationCacheDir(dir string) Config {
	c.cacheDir = dir
	return c
}

// WithPoolSize sets how many decision engines (Wasm instances) run at once; the default is
// GOMAXPROCS. Each holds its own token cache and rate buckets, and, for Wasm, its own copy
// of the snapshot.
func (c Config) WithPoolSize(n int) Config {
	c.poolSize = n
	return c
}

// WithClock replaces time.Now: the clock every decision and snapshot load is made at.
func (c Config) WithClock(now func() time.Time) Config {
	c.now = now
	return c
}

// WithMaxStaleness fails every request closed (503) once the snapshot held was issued longer
// ago than d. Zero (the default) disables the check.
func (c Config) WithMaxStaleness(d time.Duration) Config {
	c.maxStaleness = d
	return c
}

// WithTokenCacheSize bounds each engine's verified-token cache (default 4096 entries);
// negative disables it.
func (c Config) WithTokenCacheSize(n int) Config {
	c.tokenCacheSize = n
	return c
}

// WithObserver calls fn with every decision the Filter makes, before it forwards or denies
// the request (for metrics and logs). A decider failure is reported as the 503 the client
// gets. fn runs on the request's goroutine and must not keep the Result, which is reused.
func (c Config) WithObserver(fn func(*Result)) Config {
	c.observe = fn
	return c
}

// WithRecheckInterval sets how often the Filter decides every request it is still serving
// again (besides after every new snapshot), and ends those no longer allowed: a long-lived
// stream (SSE, a long poll) whose key or session is revoked, or whose token expires, is cut
// within about this long. Rechecks take nothing from rate buckets, and a recheck answered 429
// never cuts. The default is DefaultRecheckInterval; a negative d disables rechecks, so an
// allowed request runs to its end whatever happens meanwhile.
func (c Config) WithRecheckInterval(d time.Duration) Config {
	c.recheck = d
	return c
}

// WithCutObserver calls fn with the decision that ended an open request (for metrics and
// logs), from the Filter's recheck goroutine. fn must not keep the Result.
func (c Config) WithCutObserver(fn func(*Result)) Config {
	c.onCut = fn
	return c
}

func (c *Config) recheckInterval() time.Duration {
	if c.recheck == 0 {
		return DefaultRecheckInterval
	}
	return c.recheck
}

func (c *Config) clock() func() time.Time {
	if c.now == nil {
		return time.Now
	}
	return c.now
}

func (c *Config) pool() int {
	if c.poolSize > 0 {
		return c.poolSize
	}
	return runtime.GOMAXPROCS(0)
}

func (c *Config) compilationCacheDir() (string, error) {
	if c.cacheDir != "" {
		return c.cacheDir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "latchkey", "wazero"), nil
}
