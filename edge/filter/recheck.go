package filter

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// ErrCut is the cause (context.Cause) of the context of a request the Filter ended because a
// recheck no longer allowed it; errors.As gives the *CutError with the decision's reason.
var ErrCut = errors.New("filter: request no longer allowed")

// CutError says why an open request was ended.
type CutError struct {
	// Status and Reason are the recheck's denial (503 "unavailable" when the decider failed).
	Status int
	Reason string
}

func (e *CutError) Error() string { return "filter: open request ended: " + e.Reason }
func (e *CutError) Unwrap() error { return ErrCut }

// open tracks the requests a Filter is serving, to decide them again after each new
// snapshot and every interval, and to end those no longer allowed. A decision is made when a
// request arrives; a long-lived one (an SSE stream) would otherwise outlive the revocation
// of its credential or the expiry of its token for as long as it stays open.
type open struct {
	mu   sync.Mutex
	reqs map[*openRequest]struct{}
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// openRequest is what a recheck needs of a request: its input, with its own copy of the
// headers the policy reads (the handler chain may change the request's own), and how to end
// it.
type openRequest struct {
	in     Input
	cancel context.CancelCauseFunc
}

func newOpen() *open {
	return &open{reqs: map[*openRequest]struct{}{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// track registers r (allowed with res) and returns r with a context the Filter cancels if a
// recheck denies it, and the function that unregisters it when the request is over.
func (o *open) track(r *http.Request, in *Input, res *Result) (*http.Request, func()) {
	h := make(http.Header, len(res.Snapshot.canonHeaders))
	for _, name := range res.Snapshot.canonHeaders {
		if vs := in.Header[name]; len(vs) > 0 {
			h[name] = []string{vs[0]}
		}
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	or := &openRequest{in: Input{Method: in.Method, Path: in.Path, RawQuery: in.RawQuery, Header: h, Recheck: true}, cancel: cancel}
	o.mu.Lock()
	o.reqs[or] = struct{}{}
	o.mu.Unlock()
	return r.WithContext(ctx), func() {
		o.mu.Lock()
		delete(o.reqs, or)
		o.mu.Unlock()
		cancel(nil)
	}
}

// Open reports how many allowed requests the Filter is serving now.
func (f *Filter) Open() int {
	if f.open == nil {
		return 0
	}
	f.open.mu.Lock()
	defer f.open.mu.Unlock()
	return len(f.open.reqs)
}

// recheckLoop decides the open requests again every interval and after each new snapshot,
// until Close.
func (f *Filter) recheckLoop(interval time.Duration) {
	defer close(f.open.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-f.open.stop:
			return
		case <-t.C:
		case <-f.open.kick:
		}
		f.Recheck()
	}
}

// Recheck decides every open request again, now, and ends those no longer allowed (a denial
// other than 429, or a decider failure: fail closed). The Filter does this by itself after
// each snapshot and every recheck interval; it returns how many requests it ended.
func (f *Filter) Recheck() int {
	if f.open == nil {
		return 0
	}
	f.open.mu.Lock()
	reqs := make([]*openRequest, 0, len(f.open.reqs))
	for or := range f.open.reqs {
		reqs = append(reqs, or)
	}
	f.open.mu.Unlock()
	var res Result
	cut := 0
	for _, or := range reqs {
		in := or.in
		in.Now = f.now().UnixNano()
		if err := f.decider.Decide(&in, &res); err != nil {
			unavailable(&res)
		}
		if res.Allow || res.Status == http.StatusTooManyRequests {
			continue
		}
		// Observed first: whoever sees the request end can already see it counted.
		if f.onCut != nil {
			f.onCut(&res)
		}
		or.cancel(&CutError{Status: res.Status, Reason: res.Reason()})
		cut++
	}
	return cut
}

// kickRecheck asks the recheck loop to run now (after a new snapshot).
func (f *Filter) kickRecheck() {
	if f.open == nil {
		return
	}
	select {
	case f.open.kick <- struct{}{}:
	default:
	}
}
