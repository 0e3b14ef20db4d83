package main

import (
	"bytes"
	"strconv"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/proxywasm/config"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// refresher keeps a plugin on the newest snapshot its store publishes. It is a state machine
// its host drives (the proxy-wasm glue, guest_wasip1.go): begin, on every tick, names the
// manifest to fetch; receive takes each answer and names the next object to fetch, until a
// newer snapshot is verified and opened or the refresh fails. The manifest's signature, realm
// and freshness (rollback, expiry) are checked before any object is fetched, and everything
// again by abi.Load.Open with the held state, with every object's size and SHA-256. A failed
// refresh changes nothing: the held snapshot stays in service and the next tick starts over.
//
// It holds no host handles, so that it reads the same in every build; it is not safe for
// concurrent use (a proxy-wasm VM runs one callback at a time).
type refresher struct {
	cfg     *config.Refresh
	trusted []snapshot.TrustedKey

	// The held snapshot: its state, its exact manifest bytes and references, its objects (an
	// unchanged object is not fetched again) and the ETag the manifest came with.
	held     *verifier.State
	manifest []byte
	refs     []snapshot.ObjectRef
	objects  [][]byte
	etag     string

	// The refresh in progress.
	busy    bool
	started int64  // Unix ns
	gen     uint32 // numbers refreshes: an answer to an abandoned one is ignored
	next    *snapshot.Manifest
	nextRaw []byte
	tag     string
	objs    [][]byte
	delta   []byte
	at      int // the object fetched: an index of next.Objects, len(next.Objects) for the delta
}

// bootstrapTickMillis is the tick period while no snapshot is held: retry soon.
const bootstrapTickMillis = 1000

// fetch is a GET the refresher asks its host to send.
type fetch struct {
	path        string
	ifNoneMatch string
	gen         uint32
}

// outcome is where an answer led.
type outcome struct {
	// more: send next.
	more bool
	next fetch
	// loaded is a newer snapshot, now held.
	loaded *verifier.State
	// err ends the refresh without a newer snapshot; refused says the store answered with
	// something that does not verify (an attack or a misconfiguration, not an outage).
	err     string
	refused bool
}

func newRefresher(cfg *config.Refresh, trusted []snapshot.TrustedKey) *refresher {
	return &refresher{cfg: cfg, trusted: trusted}
}

// hold records st, opened from the signed manifest raw (whose references are refs) and
// objs, as the held snapshot.
func (r *refresher) hold(st *verifier.State, raw []byte, refs []snapshot.ObjectRef, objs [][]byte, etag string) {
	r.held, r.manifest, r.refs, r.objects, r.etag = st, raw, refs, objs, etag
}

// begin starts a refresh at now, unless one is in flight; ok is false when there is nothing
// to send. A refresh left unanswered for twice the timeout is abandoned (hosts answer every
// call, with an empty answer on failure; this only keeps a lost answer from stopping
// refreshes for good).
func (r *refresher) begin(now int64) (f fetch, ok bool) {
	if r.busy && now-r.started < 2*r.cfg.TimeoutMillis*1e6 {
		return fetch{}, false
	}
	r.reset()
	r.busy, r.started = true, now
	return fetch{path: r.cfg.ManifestPath(), ifNoneMatch: r.etag, gen: r.gen}, true
}

// abort ends the refresh in flight: its host could not send the request.
func (r *refresher) abort() { r.reset() }

func (r *refresher) reset() {
	r.gen++
	r.busy, r.next, r.nextRaw, r.tag, r.objs, r.delta, r.at = false, nil, nil, "", nil, nil, 0
}

// limit is the largest answer body the refresher would read now.
func (r *refresher) limit() int {
	switch {
	case !r.busy:
		return 0
	case r.next == nil:
		return limits.MaxManifestBytes
	}
	return int(r.ref().Size)
}

func (r *refresher) ref() *snapshot.ObjectRef {
	if r.at < len(r.next.Objects) {
		return &r.next.Objects[r.at]
	}
	return r.next.Delta
}

// receive takes the answer to the request gen: its status (0 when there was none), ETag,
// body length and body (nil when not read: above limit). now is the clock, Unix ns.
func (r *refresher) receive(gen uint32, status int, etag string, size int, body []byte, now int64) outcome {
	if !r.busy || gen != r.gen {
		return outcome{}
	}
	path := r.cfg.ManifestPath()
	if r.next != nil {
		path = r.cfg.ObjectPath(r.ref().Name)
	}
	switch {
	case status == 304 && r.next == nil && r.etag != "":
		// Unchanged. Time still moves on, but the engine checks the held snapshot's expiry
		// and staleness on every request.
		r.reset()
		return outcome{}
	case status == 0:
		return r.fail("GET "+path+" from cluster "+r.cfg.Cluster+": no answer (unreachable, reset or timed out)", false)
	case status != 200:
		return r.fail("GET "+path+" from cluster "+r.cfg.Cluster+": status "+strconv.Itoa(status), false)
	case r.next != nil && size != r.limit():
		return r.fail("GET "+path+": "+strconv.Itoa(size)+" bytes, the manifest says "+strconv.Itoa(r.limit()), true)
	case size > r.limit():
		return r.fail("GET "+path+": "+strconv.Itoa(size)+" bytes, more than "+strconv.Itoa(r.limit()), true)
	case len(body) != size:
		return r.fail("GET "+path+": the body could not be read", false)
	}
	if r.next == nil {
		return r.manifestArrived(body, etag, now)
	}
	if r.at < len(r.next.Objects) {
		r.objs[r.at] = body
	} else {
		r.delta = body
	}
	return r.advance(now)
}

func (r *refresher) manifestArrived(raw []byte, etag string, now int64) outcome {
	if r.held != nil && bytes.Equal(raw, r.manifest) {
		r.etag = etag
		r.reset()
		return outcome{}
	}
	m, err := snapshot.VerifyManifest(raw, r.trusted, hostcrypto.Std)
	if err != nil {
		return r.fail(err.Error(), true)
	}
	if m.Realm != r.cfg.Realm {
		return r.fail("manifest of realm "+strconv.Quote(m.Realm)+", this filter serves realm "+strconv.Quote(r.cfg.Realm), true)
	}
	var held uint64
	if r.held != nil {
		held = r.held.View().Version()
	}
	if err := m.CheckFresh(now/1e9, held); err != nil {
		return r.fail(err.Error(), true)
	}
	if r.held != nil && m.Version == held {
		// The version held, signed again: nothing new.
		r.etag = etag
		r.reset()
		return outcome{}
	}
	r.next, r.nextRaw, r.tag, r.at = m, raw, etag, 0
	r.objs = make([][]byte, len(m.Objects))
	for i, ref := range m.Objects {
		for j, h := range r.refs {
			if h == ref {
				r.objs[i] = r.objects[j]
				break
			}
		}
	}
	return r.advance(now)
}

// advance names the next object to fetch or, with every object in hand, opens the snapshot.
func (r *refresher) advance(now int64) outcome {
	for ; r.at < len(r.objs); r.at++ {
		if r.objs[r.at] == nil {
			return r.fetchRef()
		}
	}
	if r.next.Delta != nil && r.delta == nil {
		return r.fetchRef()
	}
	ld := abi.Load{Now: now, Trusted: r.trusted, Manifest: r.nextRaw, Objects: r.objs, Delta: r.delta}
	st, err := ld.Open(r.held, hostcrypto.Std)
	if err != nil {
		return r.fail(err.Error(), true)
	}
	r.hold(st, r.nextRaw, r.next.Objects, r.objs, r.tag)
	r.reset()
	return outcome{loaded: st}
}

func (r *refresher) fetchRef() outcome {
	return outcome{more: true, next: fetch{path: r.cfg.ObjectPath(r.ref().Name), gen: r.gen}}
}

func (r *refresher) fail(msg string, refused bool) outcome {
	if r.next != nil {
		msg = "manifest version " + strconv.FormatUint(r.next.Version, 10) + ": " + msg
	}
	r.reset()
	return outcome{err: msg, refused: refused}
}
