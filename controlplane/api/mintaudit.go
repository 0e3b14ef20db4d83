package api

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// mintRecord is one minted token as the audit log records it.
type mintRecord struct {
	realm, actor, keyID string
	at                  time.Time
	jti, session        string
	scopes              string
	ttl                 int64
}

const (
	// maxMintsPerEvent bounds the tokens one token.mint event lists (the store allows 64
	// detail entries; two hold the key id and the count).
	maxMintsPerEvent = 62
	// mintFlushDelay is how long minted tokens wait to be written together.
	mintFlushDelay = 5 * time.Millisecond
	// maxPendingMints bounds the records waiting to be written; beyond it, minting waits for
	// the writer (backpressure rather than unbounded memory).
	maxPendingMints = 50000
)

// errClosed: the server is shutting down and mints no more tokens.
var errClosed = errors.New("api: server closed")

// mintAuditor writes token.mint audit events in batches.
//
// Each audit append is a transaction the database makes durable (an fsync on SQLite, a WAL
// flush on PostgreSQL): one append per token would cap minting near a thousand tokens per
// second and make every request wait for a disk flush. So minted tokens are written together
// within mintFlushDelay, one event per realm, actor and minting key listing up to
// maxMintsPerEvent tokens (detail key: the jti; value: session, ttl and scopes).
//
// The guarantee is therefore: a minted token's record is in the store within a few
// milliseconds of its response, or the failure is logged naming its jti. Whenever the last
// write failed, or the queue is long, minting turns synchronous — each request waits for its
// own record and fails (503) if it cannot be written — so a store that is down stops minting
// instead of minting unaudited tokens. Close writes what is queued. No goroutine runs while
// nothing is queued: the first record of a batch starts the writer, which ends when it finds
// the queue empty.
type mintAuditor struct {
	st  store.Store
	log *slog.Logger

	mu      sync.Mutex
	pending []mintRecord
	waiters []chan error // synchronous requests, answered by the next write
	running bool         // a writer goroutine exists
	failing bool         // the last write failed
	closed  bool
	idle    sync.Cond // signalled when the writer ends
}

func (a *mintAuditor) init(st store.Store, log *slog.Logger) {
	a.st, a.log = st, log
	a.idle.L = &a.mu
}

// record queues rec; it waits for the write only while writes fail or the queue is full.
func (a *mintAuditor) record(ctx context.Context, rec mintRecord) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return errClosed
	}
	a.pending = append(a.pending, rec)
	var done chan error
	if a.failing || len(a.pending) > maxPendingMints {
		done = make(chan error, 1)
		a.waiters = append(a.waiters, done)
	}
	if !a.running {
		a.running = true
		go a.writer()
	}
	a.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *mintAuditor) writer() {
	for {
		a.mu.Lock()
		hurry := a.closed || len(a.waiters) > 0
		a.mu.Unlock()
		if !hurry {
			time.Sleep(mintFlushDelay)
		}
		a.mu.Lock()
		recs, waiters := a.pending, a.waiters
		a.pending, a.waiters = nil, nil
		if len(recs) == 0 {
			a.running = false
			a.idle.Broadcast()
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		err := a.write(recs)
		a.mu.Lock()
		a.failing = err != nil
		a.mu.Unlock()
		for _, w := range waiters {
			w <- err
		}
	}
}

// close stops minting and waits until every queued record is written.
func (a *mintAuditor) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.flush()
}

// flush waits until every record queued so far is written.
func (a *mintAuditor) flush() {
	a.mu.Lock()
	for a.running {
		a.idle.Wait()
	}
	a.mu.Unlock()
}

func (a *mintAuditor) write(recs []mintRecord) error {
	type group struct{ realm, actor, keyID string }
	var order []group
	groups := make(map[group][]mintRecord)
	for _, r := range recs {
		g := group{r.realm, r.actor, r.keyID}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], r)
	}
	// The requests that minted these tokens are gone; the write must still happen.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var first error
	for _, g := range order {
		rs := groups[g]
		for len(rs) > 0 {
			n := min(len(rs), maxMintsPerEvent)
			detail := make(map[string]string, n+2)
			detail["key_id"] = g.keyID
			detail["count"] = strconv.Itoa(n)
			jtis := make([]string, n)
			for i, r := range rs[:n] {
				detail[r.jti] = mintDetail(r)
				jtis[i] = r.jti
			}
			_, err := a.st.AppendAudit(ctx, store.AuditEvent{
				Realm: g.realm, At: rs[0].at, Actor: g.actor, Action: "token.mint", Target: g.keyID, Detail: detail,
			})
			if err != nil {
				// A jti is not a secret: logging it keeps the token accountable.
				a.log.Error("api: audit of minted tokens failed", "realm", g.realm, "key_id", g.keyID,
					"jtis", strings.Join(jtis, " "), "err", err)
				if first == nil {
					first = err
				}
			}
			rs = rs[n:]
		}
	}
	return first
}

// mintDetail describes one token: "session=<id> ttl=<s> scopes=<a b>". Session ids cannot
// hold a space, so the form parses unambiguously; scopes come last because they are a list.
func mintDetail(r mintRecord) string {
	v := "session=" + r.session + " ttl=" + strconv.FormatInt(r.ttl, 10) + " scopes=" + r.scopes
	const max = 4096 // the store's bound on a detail value
	if len(v) > max {
		v = v[:max]
	}
	return v
}

// Close stops minting client tokens and waits until the audit records of those already
// minted are written. Call it before closing the store; the rest of the API keeps working.
func (s *Server) Close() error {
	s.audit.close()
	return nil
}
