// Package publisher turns each realm's state in the control plane's store into signed
// snapshots and writes them to object storage (a local directory or S3), objects first and
// the manifest last, with a conditional manifest write so that replicas never publish over
// each other. A change is published shortly after it is notified, as a small cumulative delta
// over the last full snapshot when the snapshot format can carry it.
package publisher

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// Defaults for Options.
const (
	DefaultDebounce  = 100 * time.Millisecond
	DefaultInterval  = time.Minute
	DefaultFullEvery = 50
)

// pollInterval is how often Run looks for changes made through other replicas, and for
// manifests due for a refresh.
const pollInterval = time.Second

// maxAttempts bounds the publications of one realm that lose the conditional manifest write
// in a row before a publish gives up and leaves the realm to the next poll. Between attempts
// the publisher waits a random time that grows with the attempt, so that two replicas
// publishing the same realm at once stop colliding.
const maxAttempts = 8

// objectWriters bounds the objects written at once (a 1M-key snapshot has 4 shards of 8 MiB).
const objectWriters = 4

// parallelRealms bounds the realms Run publishes at once: when it starts, every realm is due,
// and a thousand full builds at once would only compete for memory and the database.
const parallelRealms = 4

// Options configure a Publisher. Store, Target and Signer are required.
type Options struct {
	Store  store.Store
	Target Target
	// Signer signs manifests. When it also has a method Trusted() snapshot.TrustedKey (as the
	// control plane's manifest key does), the publisher reads the version of a manifest it
	// finds in the target and refuses to publish below it (ErrVersionBehind).
	Signer snapshot.Signer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Debounce is how long Notify waits, from the first of a burst of notifications, before
	// publishing all of them at once; 0 means DefaultDebounce.
	Debounce time.Duration
	// Interval is how often a realm is republished without a change, to refresh the
	// manifest's ExpiresAt; 0 means DefaultInterval.
	Interval time.Duration
	// Validity is how long a manifest stays fresh (ExpiresAt = IssuedAt + Validity); 0 means
	// DefaultValidity. It must exceed Interval.
	Validity time.Duration
	// FullEvery is how many deltas may follow a full snapshot before the next full one; 0
	// means DefaultFullEvery, a negative value publishes full snapshots only.
	FullEvery int
	// Shards is snapshot.BuildOptions.Shards (0: chosen by size).
	Shards int
	// Logger receives one line per publication and per problem; nil discards.
	Logger *slog.Logger
}

// Status is what a realm's last publication did.
type Status struct {
	// Version is the version of the last manifest written; Full says whether it was a full
	// snapshot, BaseVersion the full snapshot a delta applies to (0 for a full one).
	Version     uint64
	Full        bool
	BaseVersion uint64
	PublishedAt time.Time
	// ChangeSeq is the store change sequence the published snapshot reflects.
	ChangeSeq uint64
	// Lag is the time from the change notification to the manifest written, last publish.
	Lag time.Duration
	// LastError is the last attempt's error, "" when it succeeded.
	LastError string
	// Keys counts the keys the published snapshot holds.
	Keys int
	// Skipped counts the stored keys left out because they do not fit the policy (each is
	// logged): those the full snapshot left out plus those a delta since left out.
	Skipped int
}

// Publisher publishes realms' snapshots. Its methods are safe for concurrent use.
type Publisher struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	realms  map[string]*realmState
	due     map[string]bool // realms whose debounce ran out, for Run
	wake    chan struct{}   // capacity 1: Run has due realms
	slots   chan struct{}   // capacity parallelRealms: publications Run has in flight
	running bool
	catchUp int // maxCatchUp; tests lower it
}

// realmState is one realm's publication state.
type realmState struct {
	name string

	// Guarded by Publisher.mu.
	pendingSince time.Time // first notification not yet covered by a publish; zero when none
	timer        bool      // a debounce timer is running
	working      bool      // Run has a worker publishing this realm
	again        bool      // the realm became due again while the worker ran
	status       Status
	failures     int
	nextTry      time.Time // after a failure, Run's poll waits until then

	// Guarded by pub, which is held for a whole publication.
	pub           sync.Mutex
	etag          string // the manifest's ETag as last written or read
	etagKnown     bool
	remoteVersion uint64 // version of the manifest found in the target, when readable
	base          *base
	deltas        int
}

// base is the last full snapshot this publisher wrote for a realm, as much of it as building a
// delta over it needs.
type base struct {
	version      uint64
	seq          uint64
	refs         []snapshot.ObjectRef
	policy       *realmPolicy
	signing      []snapshot.SigningKey
	storedOrgs   map[string]uint8
	revTokens    map[[32]byte]int64
	revSessions  map[[32]byte]int64
	keyCount     int
	skipped      int
	index        func() []keyPrefix // the base's key hashes, sorted; computed in the background
	maxDeltaKeys int
}

// keyPrefix is the published part of a key hash (the first 16 bytes), as two words.
type keyPrefix struct{ hi, lo uint64 }

func prefixOf(h *apikey.Hash) keyPrefix {
	return keyPrefix{binary.BigEndian.Uint64(h[0:8]), binary.BigEndian.Uint64(h[8:16])}
}

func comparePrefix(a, b keyPrefix) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

// New returns a Publisher. It does nothing until Notify, PublishNow or Run.
func New(o Options) (*Publisher, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("publisher: Options.Store is required")
	case o.Target == nil:
		return nil, errors.New("publisher: Options.Target is required")
	case o.Signer == nil:
		return nil, errors.New("publisher: Options.Signer is required")
	case o.Debounce < 0, o.Interval < 0, o.Validity < 0:
		return nil, errors.New("publisher: Debounce, Interval and Validity must not be negative")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Debounce == 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Validity == 0 {
		o.Validity = DefaultValidity
	}
	if o.Validity <= o.Interval {
		return nil, errors.New("publisher: Validity must exceed Interval, or manifests expire between refreshes")
	}
	if o.FullEvery == 0 {
		o.FullEvery = DefaultFullEvery
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{
		o:       o,
		log:     log,
		realms:  map[string]*realmState{},
		due:     map[string]bool{},
		wake:    make(chan struct{}, 1),
		slots:   make(chan struct{}, parallelRealms),
		catchUp: maxCatchUp,
	}, nil
}

// realm returns the state of a realm, creating it. p.mu must be held.
func (p *Publisher) realm(name string) *realmState {
	rs := p.realms[name]
	if rs == nil {
		rs = &realmState{name: name}
		p.realms[name] = rs
	}
	return rs
}

// Notify says that realm's state changed: it is published once the debounce has passed since
// the first notification not yet published, together with every change made until then.
// Notify never blocks; the publication happens in Run.
func (p *Publisher) Notify(realm string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := p.realm(realm)
	if rs.pendingSince.IsZero() {
		rs.pendingSince = p.o.Now()
	}
	// An explicit change is worth trying at once, whatever the last failure.
	rs.nextTry = time.Time{}
	if !rs.timer {
		rs.timer = true
		time.AfterFunc(p.o.Debounce, func() { p.fire(rs) })
	}
}

// fire runs when a realm's debounce ends.
func (p *Publisher) fire(rs *realmState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rs.timer = false
	if !rs.pendingSince.IsZero() { // else a publish in between covered it
		p.markDueLocked(rs)
	}
}

func (p *Publisher) markDueLocked(rs *realmState) {
	p.due[rs.name] = true
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Status returns what the realm's last publication did (the zero Status before any).
func (p *Publisher) Status(realm string) Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rs := p.realms[realm]; rs != nil {
		return rs.status
	}
	return Status{}
}

// PublishNow publishes realm at once, with every change made before the call, and returns the
// resulting status (also on error, with LastError set).
func (p *Publisher) PublishNow(ctx context.Context, realm string) (Status, error) {
	p.mu.Lock()
	rs := p.realm(realm)
	p.mu.Unlock()
	return p.publish(ctx, rs)
}

// Run publishes notified realms once their debounce has passed, republishes each realm
// every Interval (refreshing its manifest's expiry), and once a second compares every realm's
// change sequence with the one last published, which catches changes made through other
// replicas. Every realm is published once when Run starts. It returns nil once ctx is done
// and in-flight publications have finished.
func (p *Publisher) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return errors.New("publisher: Run is already running")
	}
	p.running = true
	p.mu.Unlock()

	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	p.poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			p.poll(ctx)
		case <-p.wake:
		}
		p.mu.Lock()
		for name := range p.due {
			delete(p.due, name)
			rs := p.realm(name)
			if rs.working {
				rs.again = true
				continue
			}
			rs.working = true
			wg.Add(1)
			go p.work(ctx, rs, &wg)
		}
		p.mu.Unlock()
	}
}

// work publishes rs until it is no longer due.
func (p *Publisher) work(ctx context.Context, rs *realmState, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		if ctx.Err() != nil {
			p.mu.Lock()
			rs.working, rs.again = false, false
			p.mu.Unlock()
			return
		}
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		_, _ = p.publish(ctx, rs) // the outcome is in the status and the log
		<-p.slots
		p.mu.Lock()
		if !rs.again {
			rs.working = false
			p.mu.Unlock()
			return
		}
		rs.again = false
		p.mu.Unlock()
	}
}

// poll marks due every realm with an unpublished change or an aging manifest.
func (p *Publisher) poll(ctx context.Context) {
	realms, err := p.o.Store.ListRealms(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("snapshot publisher: listing realms failed", "err", err)
		}
		return
	}
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range realms {
		rs := p.realm(r.Name)
		st := &rs.status
		stale := st.PublishedAt.IsZero() || r.ChangeSeq > st.ChangeSeq || now.Sub(st.PublishedAt) >= p.o.Interval
		// A realm being published is looked at again once its status is updated: a change it
		// missed still shows then as a newer change sequence.
		if !stale || rs.working || now.Before(rs.nextTry) {
			continue
		}
		if rs.pendingSince.IsZero() {
			rs.pendingSince = now
		}
		p.markDueLocked(rs)
	}
}

// publish publishes rs once, retrying with a newer version when another replica wins the
// manifest write, and records the outcome.
func (p *Publisher) publish(ctx context.Context, rs *realmState) (Status, error) {
	rs.pub.Lock()
	defer rs.pub.Unlock()
	// Every change notified so far is in the store already, so this publication covers it.
	start := p.o.Now()
	p.mu.Lock()
	since := rs.pendingSince
	rs.pendingSince = time.Time{}
	p.mu.Unlock()
	if since.IsZero() || since.After(start) {
		since = start
	}

	var (
		st  Status
		err error
	)
	for attempt := 1; ; attempt++ {
		st, err = p.publishOnce(ctx, rs)
		if !errors.Is(err, ErrPrecondition) || attempt == maxAttempts {
			break
		}
		// Another replica published in between: read its manifest's ETag and publish again,
		// with a version the store hands out after the one it used. Its snapshot may predate
		// the change this publication is for, so publishing again is not optional.
		rs.etagKnown = false
		p.log.Info("snapshot publisher: manifest changed by another writer; publishing again", "realm", rs.name, "attempt", attempt)
		if err := sleepCtx(ctx, rand.N(time.Duration(attempt)*20*time.Millisecond)); err != nil {
			break
		}
	}

	end := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		rs.failures++
		backoff := min(time.Duration(1)<<min(rs.failures, 16)*time.Second/2, p.o.Interval)
		rs.nextTry = end.Add(backoff)
		rs.status.LastError = err.Error()
		level := slog.LevelError
		switch {
		case ctx.Err() != nil:
			level = slog.LevelDebug // shutting down
		case errors.Is(err, ErrNoPolicy):
			level = slog.LevelWarn
		}
		p.log.Log(ctx, level, "snapshot publish failed", "realm", rs.name, "err", err, "retry_in", backoff)
		return rs.status, err
	}
	rs.failures, rs.nextTry = 0, time.Time{}
	st.Lag = end.Sub(since)
	rs.status = st
	kind := "delta"
	if st.Full {
		kind = "full"
	}
	p.log.Info("snapshot published", "realm", rs.name, "version", st.Version, "kind", kind,
		"base_version", st.BaseVersion, "keys", st.Keys, "skipped", st.Skipped, "change_seq", st.ChangeSeq, "lag", st.Lag)
	return st, nil
}

// publishOnce builds and writes one version: a delta over the base when it can carry the
// changes, else a full snapshot. rs.pub is held.
func (p *Publisher) publishOnce(ctx context.Context, rs *realmState) (Status, error) {
	if !rs.etagKnown {
		if err := p.readManifest(ctx, rs); err != nil {
			return Status{}, err
		}
	}
	now := p.o.Now()
	if b := rs.base; b != nil && p.o.FullEvery > 0 && rs.deltas < p.o.FullEvery {
		db, why, err := p.buildDelta(ctx, rs, now)
		if err != nil {
			return Status{}, err
		}
		if db != nil {
			return p.writeDelta(ctx, rs, db, now)
		}
		p.log.Debug("snapshot publisher: full snapshot instead of a delta", "realm", rs.name, "why", why)
	}
	return p.writeFull(ctx, rs, now)
}

// readManifest learns the ETag (and, when the signer can say which key verifies it, the
// version) of the manifest in the target.
func (p *Publisher) readManifest(ctx context.Context, rs *realmState) error {
	data, etag, err := p.o.Target.Get(ctx, ManifestName(rs.name))
	switch {
	case errors.Is(err, ErrNotFound):
		rs.etag, rs.etagKnown, rs.remoteVersion = "", true, 0
		return nil
	case err != nil:
		return err
	}
	rs.etag, rs.etagKnown, rs.remoteVersion = etag, true, 0
	if tk, ok := p.o.Signer.(interface{ Trusted() snapshot.TrustedKey }); ok {
		if m, err := snapshot.VerifyManifest(data, []snapshot.TrustedKey{tk.Trusted()}, hostcrypto.Std); err == nil && m.Realm == rs.name {
			rs.remoteVersion = m.Version
		}
	}
	return nil
}

// maxCatchUp bounds the versions nextVersion skips to get past a manifest found in the target.
const maxCatchUp = 10000

// nextVersion hands out the version of the next publication. When the target holds a
// manifest of ours (verified under our key) with a version the store has not reached, the
// store was reset under a kept target: edges would refuse our versions as rollbacks, so
// versions are drawn until one is above it (a version drawn and not published is simply
// skipped), up to p.catchUp of them; beyond that, ErrVersionBehind.
func (p *Publisher) nextVersion(ctx context.Context, rs *realmState) (uint64, error) {
	for skipped := 0; ; skipped++ {
		v, err := p.o.Store.NextSnapshotVersion(ctx, rs.name)
		if err != nil {
			return 0, &Error{Op: "publish", Realm: rs.name, Err: err}
		}
		if v > rs.remoteVersion {
			if skipped > 0 {
				p.log.Warn("snapshot publisher: the target held a newer snapshot than the store; versions skipped",
					"realm", rs.name, "target_version", rs.remoteVersion, "skipped", skipped, "version", v)
			}
			return v, nil
		}
		if skipped == 0 && rs.remoteVersion-v >= uint64(p.catchUp) {
			return 0, &Error{Op: "publish", Realm: rs.name, Name: "version " + strconv.FormatUint(v, 10) +
				" (target holds " + strconv.FormatUint(rs.remoteVersion, 10) + ")", Err: ErrVersionBehind}
		}
	}
}

// contentName is the name a manifest gives an object: the snapshot's own name ("v12-meta")
// and the first 8 bytes of its SHA-256, so that a name is never reused for other bytes (a
// failed publication's version is never handed out again, and the digest covers the rest).
func contentName(name string, sum [32]byte) string {
	return name + "-" + hex.EncodeToString(sum[:8])
}

// putObjects writes objects, a few at a time, and returns once all are written.
func (p *Publisher) putObjects(ctx context.Context, realm string, objs []snapshot.Object, refs []snapshot.ObjectRef) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, objectWriters)
	errs := make([]error, len(objs))
	var wg sync.WaitGroup
	for i := range objs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if errs[i] = p.o.Target.PutObject(ctx, ObjectName(realm, refs[i].Name), objs[i].Data); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// writeManifest signs m and writes it conditionally on the last ETag seen.
func (p *Publisher) writeManifest(ctx context.Context, rs *realmState, m *snapshot.Manifest) error {
	data, err := snapshot.SignManifest(m, p.o.Signer)
	if err != nil {
		return &Error{Op: "publish", Realm: rs.name, Name: "sign manifest", Err: err}
	}
	etag, err := p.o.Target.PutManifest(ctx, ManifestName(rs.name), data, rs.etag)
	if err != nil {
		return err
	}
	rs.etag, rs.remoteVersion = etag, m.Version
	return nil
}

// writeFull builds, writes and records a full snapshot.
func (p *Publisher) writeFull(ctx context.Context, rs *realmState, now time.Time) (Status, error) {
	hint := 0
	if rs.base != nil {
		hint = rs.base.keyCount
	}
	fb, err := buildFull(ctx, p.o.Store, rs.name, now, hint)
	if err != nil {
		return Status{}, err
	}
	for _, s := range fb.report.Skipped {
		p.log.Warn("snapshot publisher: key left out of the snapshot", "realm", rs.name, "key_id", s.ID, "type", s.Type, "reason", s.Reason)
	}
	if n := fb.report.SkippedCount - len(fb.report.Skipped); n > 0 {
		p.log.Warn("snapshot publisher: more keys left out of the snapshot", "realm", rs.name, "count", n)
	}
	c := fb.contents
	c.ExpiresAt = now.Add(p.o.Validity).Unix()
	if c.Version, err = p.nextVersion(ctx, rs); err != nil {
		return Status{}, err
	}
	objs, err := snapshot.Build(c, snapshot.BuildOptions{Shards: p.o.Shards})
	if err != nil {
		return Status{}, &Error{Op: "publish", Realm: rs.name, Name: "build", Err: err}
	}
	refs := snapshot.Refs(objs, hostcrypto.Std)
	for i := range refs {
		refs[i].Name = contentName(objs[i].Name, refs[i].SHA256)
	}
	if err := p.putObjects(ctx, rs.name, objs, refs); err != nil {
		return Status{}, err
	}
	m := &snapshot.Manifest{Realm: rs.name, Version: c.Version, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, Objects: refs}
	if err := p.writeManifest(ctx, rs, m); err != nil {
		return Status{}, err
	}

	b := &base{
		version:     c.Version,
		seq:         fb.report.Seq,
		refs:        refs,
		policy:      fb.policy,
		signing:     c.SigningKeys,
		storedOrgs:  fb.storedOrgs,
		revTokens:   revocationMap(c.RevokedTokens),
		revSessions: revocationMap(c.RevokedSessions),
		keyCount:    len(c.Keys),
		skipped:     fb.report.SkippedCount,
	}
	b.maxDeltaKeys = min(max(b.keyCount/4, 256), 65536)
	// The sorted hash index is needed by the first delta, not by this publication: sort it in
	// the background. The contents' keys are released once it is done.
	prefixes := make([]keyPrefix, len(c.Keys))
	for i := range c.Keys {
		prefixes[i] = prefixOf(&c.Keys[i].Hash)
	}
	done := make(chan struct{})
	go func() {
		slices.SortFunc(prefixes, comparePrefix)
		close(done)
	}()
	b.index = func() []keyPrefix { <-done; return prefixes }
	rs.base, rs.deltas = b, 0
	return Status{
		Version: c.Version, Full: true, PublishedAt: now, ChangeSeq: fb.report.Seq,
		Keys: b.keyCount, Skipped: b.skipped,
	}, nil
}

func revocationMap(rs []snapshot.Revocation) map[[32]byte]int64 {
	m := make(map[[32]byte]int64, len(rs))
	for _, r := range rs {
		m[r.Hash] = r.Until
	}
	return m
}

// deltaBuild is a delta ready to write.
type deltaBuild struct {
	delta   *snapshot.Delta
	seq     uint64
	keys    int
	skipped int
}

// buildDelta builds the cumulative delta from the base to the store's state at now, or says
// why a full snapshot is needed instead (a nil deltaBuild and a reason).
//
// A delta carries key additions, replacements and removals, org upserts and revocations. It
// cannot carry a policy or a change to the signing keys, so either needs a full snapshot, as
// do more key changes than the base's maxDeltaKeys (a full snapshot is then about as cheap).
// Key changes are read first: everything read afterwards is at least as new, so the delta
// reflects the change sequence KeyChangesSince returns.
func (p *Publisher) buildDelta(ctx context.Context, rs *realmState, now time.Time) (*deltaBuild, string, error) {
	st, b := p.o.Store, rs.base
	fail := func(err error) (*deltaBuild, string, error) {
		return nil, "", &Error{Op: "build delta", Realm: rs.name, Err: err}
	}
	kc, err := st.KeyChangesSince(ctx, rs.name, b.seq, now, b.maxDeltaKeys)
	if err != nil {
		return fail(err)
	}
	if kc.Truncated {
		return nil, "more than " + strconv.Itoa(b.maxDeltaKeys) + " keys changed", nil
	}
	realm, err := st.GetRealm(ctx, rs.name)
	if err != nil {
		return fail(err)
	}
	if realm.PolicyVersion != b.policy.version {
		return nil, "policy changed", nil
	}
	sks, err := st.ListSigningKeys(ctx, rs.name)
	if err != nil {
		return fail(err)
	}
	signing, err := signingKeys(sks, now)
	if err != nil {
		return fail(err)
	}
	if !sameSigningKeys(b.signing, signing, now.Unix()) {
		return nil, "signing keys changed", nil
	}
	stored, err := st.ListOrgStates(ctx, rs.name)
	if err != nil {
		return fail(err)
	}
	revs, err := st.ListRevocations(ctx, rs.name, now)
	if err != nil {
		return fail(err)
	}

	d := &snapshot.Delta{Realm: rs.name, BaseVersion: b.version, IssuedAt: now.Unix(), ExpiresAt: now.Add(p.o.Validity).Unix()}
	index := b.index()
	inBase := func(h *apikey.Hash) bool {
		_, ok := slices.BinarySearchFunc(index, prefixOf(h), comparePrefix)
		return ok
	}
	db := &deltaBuild{delta: d, seq: kc.Seq, keys: b.keyCount, skipped: b.skipped}
	remove := func(h apikey.Hash) {
		if inBase(&h) {
			d.RemoveKeys = append(d.RemoveKeys, h)
			db.keys--
		}
	}
	m := newKeyMapper(b.policy.compiled)
	for i := range kc.Upserted {
		k := &kc.Upserted[i]
		rec, reason := m.record(k)
		if reason != "" {
			p.log.Warn("snapshot publisher: key left out of the snapshot", "realm", rs.name, "key_id", k.ID, "type", k.Type, "reason", reason)
			db.skipped++
			remove(k.Hash)
			continue
		}
		if !inBase(&k.Hash) {
			db.keys++
		}
		d.AddKeys = append(d.AddKeys, rec)
	}
	for _, h := range kc.Removed {
		remove(h)
	}

	// Orgs: every stored state that differs from the base's, and the org of every added key
	// (a delta resolves its keys' orgs without the base).
	current := make(map[string]uint8, len(stored))
	inDelta := map[string]bool{}
	for _, o := range stored {
		s := orgState(o.State)
		current[o.Org] = s
		if prev, ok := b.storedOrgs[o.Org]; !ok || prev != s {
			d.Orgs = append(d.Orgs, snapshot.Org{ID: o.Org, State: s})
			inDelta[o.Org] = true
		}
	}
	for i := range d.AddKeys {
		org := d.AddKeys[i].Org
		if inDelta[org] {
			continue
		}
		s, ok := current[org]
		if !ok {
			s = snapshot.OrgActive
		}
		d.Orgs = append(d.Orgs, snapshot.Org{ID: org, State: s})
		inDelta[org] = true
	}

	// Revocations: those the base lacks, or holds with an earlier Until (a view checks both
	// tables, so a longer one in the delta wins).
	tokens, sessions := revocations(revs)
	d.RevokedTokens = newRevocations(tokens, b.revTokens)
	d.RevokedSessions = newRevocations(sessions, b.revSessions)
	return db, "", nil
}

func newRevocations(rs []snapshot.Revocation, base map[[32]byte]int64) []snapshot.Revocation {
	var out []snapshot.Revocation
	for _, r := range rs {
		if until, ok := base[r.Hash]; ok && (until == 0 || r.Until != 0 && r.Until <= until) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// sameSigningKeys reports whether publishing cur would tell an edge nothing the base does
// not: the same keys, except base keys that no longer verify anything at now anyway.
func sameSigningKeys(base, cur []snapshot.SigningKey, now int64) bool {
	find := func(ks []snapshot.SigningKey, kid string) *snapshot.SigningKey {
		for i := range ks {
			if ks[i].KID == kid {
				return &ks[i]
			}
		}
		return nil
	}
	for i := range cur {
		b := find(base, cur[i].KID)
		if b == nil || b.Alg != cur[i].Alg || b.NotAfter != cur[i].NotAfter || string(b.Public) != string(cur[i].Public) {
			return false
		}
	}
	for i := range base {
		if find(cur, base[i].KID) == nil && (base[i].NotAfter == 0 || base[i].NotAfter > now) {
			return false
		}
	}
	return true
}

// writeDelta writes a delta object and the manifest naming it over the base.
func (p *Publisher) writeDelta(ctx context.Context, rs *realmState, db *deltaBuild, now time.Time) (Status, error) {
	b, d := rs.base, db.delta
	v, err := p.nextVersion(ctx, rs)
	if err != nil {
		return Status{}, err
	}
	d.Version = v
	obj, err := snapshot.BuildDelta(d)
	if err != nil {
		return Status{}, &Error{Op: "publish", Realm: rs.name, Name: "build delta", Err: err}
	}
	ref := snapshot.Ref(obj, hostcrypto.Std)
	ref.Name = contentName(obj.Name, ref.SHA256)
	if err := p.o.Target.PutObject(ctx, ObjectName(rs.name, ref.Name), obj.Data); err != nil {
		return Status{}, err
	}
	m := &snapshot.Manifest{
		Realm: rs.name, Version: v, BaseVersion: b.version, IssuedAt: d.IssuedAt, ExpiresAt: d.ExpiresAt,
		Objects: b.refs, Delta: &ref,
	}
	if err := p.writeManifest(ctx, rs, m); err != nil {
		return Status{}, err
	}
	rs.deltas++
	return Status{
		Version: v, BaseVersion: b.version, PublishedAt: now, ChangeSeq: db.seq,
		Keys: db.keys, Skipped: db.skipped,
	}, nil
}
