package conformance

import (
	"io"
	"net/http"
	"sync"
	"testing"
)

// Recorder is the upstream of an HTTP host: it answers every request UpstreamStatus with an
// empty body and keeps the last request it received.
type Recorder struct {
	mu   sync.Mutex
	last *Upstream
}

func (rec *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.last = &Upstream{Header: r.Header.Clone(), Target: r.RequestURI}
	rec.mu.Unlock()
	w.WriteHeader(UpstreamStatus)
}

// Take returns the last request received and forgets it (nil when none came).
func (rec *Recorder) Take() *Upstream {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	u := rec.last
	rec.last = nil
	return u
}

// client never follows redirects: a redirect is the host's answer, to be compared like any other.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Send sends ex to the HTTP host at base ("http://127.0.0.1:port") and returns its response,
// with what rec (the host's upstream) received.
func Send(t *testing.T, base string, ex *Exchange, rec *Recorder) *Response {
	t.Helper()
	req, err := http.NewRequest(ex.Method, base+ex.Target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = ex.Header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body, Upstream: rec.Take()}
}
