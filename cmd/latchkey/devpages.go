package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/policyfile"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

// The two pages `latchkey dev` serves for a browser, and where. The handoff page lives on the
// edge's origin so that its EventSource and fetch calls reach the edge same-origin, as a
// platform's own web app would; /_latchkey/ is where the dev edge keeps its own paths, so no
// upstream route is shadowed. The keys page lives on the control plane's origin so its API calls are
// same-origin too (the API sends no CORS headers).
const (
	handoffPagePath = "/_latchkey/demo/"
	keysPagePath    = "/ui/"
)

// handoffTTL is the lifetime of a token the handoff page mints when the user names none.
const handoffTTL = 300

//go:embed devpages
var devPages embed.FS

// pageHeaders are set on every page and asset: the pages load only their own script and
// style, talk only to their own origin, and are never framed or cached.
func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
		"connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// pageTypes are the content types of the pages' files, named here rather than taken from
// the system's MIME table, which may say otherwise (or nothing) for .js.
var pageTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// servePage answers GET and HEAD for the files of one page; anything else under prefix is a
// JSON 404 or 405.
func servePage(prefix string, files map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := files[strings.TrimPrefix(r.URL.Path, prefix)]
		if !ok {
			writeDevError(w, http.StatusNotFound, "not_found", "", "no such page: "+r.URL.Path)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeDevError(w, http.StatusMethodNotAllowed, "method_not_allowed", "", r.Method+" is not allowed here")
			return
		}
		body, err := devPages.ReadFile("devpages/" + name)
		if err != nil {
			writeDevError(w, http.StatusNotFound, "not_found", "", "no such page: "+r.URL.Path)
			return
		}
		pageHeaders(w.Header())
		w.Header().Set("Content-Type", pageTypes[name[strings.LastIndexByte(name, '.'):]])
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// withPrefix sends requests under prefix (and prefix without its slash, redirected) to pages
// and everything else to next.
func withPrefix(prefix string, pages, next http.Handler) http.Handler {
	bare := strings.TrimSuffix(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == bare:
			http.Redirect(w, r, prefix, http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, prefix):
			pages.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// keysPage serves the key-management page beside the API. The page is static: it calls the
// API itself with the admin key the user gives it.
func keysPage(api http.Handler) http.Handler {
	return withPrefix(keysPagePath, servePage(keysPagePath, map[string]string{
		"": "keys.html", "keys.js": "keys.js", "pages.css": "pages.css",
	}), api)
}

// handoffBackend plays a platform's own backend for the handoff page: it holds the sample
// API key and the admin key, and asks the control plane for a session's client token or the
// session's revocation on the browser's behalf. The browser only ever holds client tokens.
type handoffBackend struct {
	minter *client // the sample key: a realm API key minting for itself
	admin  *client // the admin key: reads the policy, revokes sessions
	// loopbackOnly refuses a Host that is not a loopback name or address when the edge
	// listens on loopback: a DNS-rebound page of another site must not reach these endpoints.
	loopbackOnly bool
}

// newHandoffBackend returns the backend for the setup dev started. Without the sample key
// (a reused data directory: the key's plaintext was shown on the first run only) it answers
// 503 saying so.
func newHandoffBackend(s *devSetup) *handoffBackend {
	hc := &http.Client{Timeout: 30 * time.Second}
	b := &handoffBackend{loopbackOnly: isLoopbackHost(hostOf(strings.TrimPrefix(s.Edge, "http://")))}
	if s.SampleKey != "" && s.AdminKey != "" {
		b.minter = &client{base: s.ControlPlane, key: s.SampleKey, http: hc}
		b.admin = &client{base: s.ControlPlane, key: s.AdminKey, http: hc}
	}
	return b
}

// handler serves the handoff page and its backend under handoffPagePath, and next (the edge)
// everywhere else.
func (b *handoffBackend) handler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	api := handoffPagePath + "api/"
	mux.HandleFunc("GET "+api+"token-policy", b.guard(b.tokenPolicy))
	mux.HandleFunc("POST "+api+"sessions", b.guard(b.mint))
	mux.HandleFunc("DELETE "+api+"sessions/{id}", b.guard(b.revoke))
	mux.HandleFunc(api, func(w http.ResponseWriter, r *http.Request) {
		writeDevError(w, http.StatusNotFound, "not_found", "", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	mux.Handle(handoffPagePath, servePage(handoffPagePath, map[string]string{
		"": "handoff.html", "handoff.js": "handoff.js", "pages.css": "pages.css",
	}))
	return withPrefix(handoffPagePath, mux, next)
}

// guard refuses requests a page of another origin could have sent, then runs h.
func (b *handoffBackend) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if b.loopbackOnly && !isLoopbackHost(hostOf(r.Host)) {
			writeDevError(w, http.StatusForbidden, "forbidden", "Host", "latchkey dev's backend answers only on a loopback address, not "+r.Host)
			return
		}
		// A cross-site page may send a simple POST; the browser says where it came from.
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			writeDevError(w, http.StatusForbidden, "forbidden", "Sec-Fetch-Site", "only the handoff page of this origin may call its backend (Sec-Fetch-Site: "+site+")")
			return
		}
		if b.minter == nil {
			writeDevError(w, http.StatusServiceUnavailable, "unavailable", "",
				"latchkey dev reused its data directory, so it does not hold the sample key (shown on the first run only): start it without --data-dir to use this page")
			return
		}
		h(w, r)
	}
}

// tokenPolicy answers the realm's client-token limits, so the page can say when the edge
// will refuse a token: at its expiry plus the realm's leeway.
func (b *handoffBackend) tokenPolicy(w http.ResponseWriter, r *http.Request) {
	tp, err := b.realmTokens(r.Context())
	if err != nil {
		writeUpstreamError(w, "reading the realm's policy", err)
		return
	}
	writeDevJSON(w, http.StatusOK, map[string]any{
		"leeway_seconds": tp.Leeway, "max_ttl_seconds": tp.MaxTTL, "default_ttl_seconds": handoffTTL,
	})
}

func (b *handoffBackend) realmTokens(ctx context.Context) (*policy.CompiledTokens, error) {
	raw, err := b.admin.do(ctx, http.MethodGet, "/v1/policy", nil, "")
	if err != nil {
		return nil, err
	}
	p, err := policyfile.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the realm's policy does not parse: %w", err)
	}
	c, err := policy.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("the realm's policy does not compile: %w", err)
	}
	if c.Tokens() == nil {
		return nil, errors.New("the realm's policy has no tokens section: it accepts no client tokens")
	}
	return c.Tokens(), nil
}

// handoffScopes are what a browser needs for one session: stream it and steer it.
var handoffScopes = []string{"read", "steer"}

// mint starts a new session and returns a client token for it: POST with {"ttl": seconds}
// (optional). The sample key mints for itself, as a platform's backend would with its own key.
func (b *handoffBackend) mint(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TTL *int64 `json:"ttl"`
	}
	if e := decodeDevJSON(r, &req); e != nil {
		e.write(w)
		return
	}
	ttl := int64(handoffTTL)
	if req.TTL != nil {
		if *req.TTL < 1 {
			writeDevError(w, http.StatusUnprocessableEntity, "invalid_request", "ttl", fmt.Sprintf("ttl: must be at least 1 second (got %d)", *req.TTL))
			return
		}
		ttl = *req.TTL
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	session := "demo-" + hex.EncodeToString(rnd[:])
	var minted struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if _, err := b.minter.call(r.Context(), http.MethodPost, "/v1/sessions/"+session+"/client-tokens",
		map[string]any{"scopes": handoffScopes, "ttl": ttl}, &minted); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			// The banner's last curl line revokes the sample key.
			ae.Message += " (this backend mints with the sample key: restart latchkey dev for new keys)"
		}
		writeUpstreamError(w, "minting the client token", err)
		return
	}
	out := map[string]any{
		"session": session, "token": minted.Token, "scopes": handoffScopes, "ttl_seconds": ttl,
		"expires_at": minted.ExpiresAt,
	}
	// The page shows when the edge starts refusing; without the policy it shows the expiry only.
	if tp, err := b.realmTokens(r.Context()); err == nil {
		out["leeway_seconds"] = tp.Leeway
		out["refused_from"] = minted.ExpiresAt.Add(time.Duration(tp.Leeway) * time.Second)
	}
	writeDevJSON(w, http.StatusCreated, out)
}

// sessionIDPattern is the control plane's session id syntax.
var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// revoke revokes every client token of a session: DELETE .../sessions/{id}.
func (b *handoffBackend) revoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !sessionIDPattern.MatchString(id) {
		writeDevError(w, http.StatusUnprocessableEntity, "invalid_request", "id", "id: must be a session id: 1..128 characters of [A-Za-z0-9._:-]")
		return
	}
	if _, err := b.admin.do(r.Context(), http.MethodDelete, "/v1/sessions/"+id+"/client-tokens", nil, ""); err != nil {
		writeUpstreamError(w, "revoking the session", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// devError is a refusal in the API's terms: status, code, field at fault, message.
type devError struct {
	status      int
	code, field string
	msg         string
}

func (e *devError) write(w http.ResponseWriter) { writeDevError(w, e.status, e.code, e.field, e.msg) }

// decodeDevJSON decodes a small JSON object body strictly, with the API's statuses: 415
// unless JSON, 413 above 4 KiB, 400 invalid_json for malformed JSON, a value of the wrong
// type or an unknown field. An empty body is an empty object.
func decodeDevJSON(r *http.Request, v any) *devError {
	const limit = 4 << 10
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return &devError{http.StatusBadRequest, "invalid_json", "", "reading the request body: " + err.Error()}
	}
	if len(body) > limit {
		return &devError{http.StatusRequestEntityTooLarge, "payload_too_large", "", "the request body is larger than 4 KiB"}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return &devError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type", "Content-Type must be application/json"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	bad := func(field, msg string) *devError { return &devError{http.StatusBadRequest, "invalid_json", field, msg} }
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return bad(te.Field, te.Field+": must be a whole number of seconds, not a JSON "+te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return bad(f, f+": unknown field (the body takes only \"ttl\")")
		default:
			return bad("", "the body is not a JSON object: "+err.Error())
		}
	}
	if dec.More() {
		return bad("", "the body holds more than one JSON value")
	}
	return nil
}

// writeUpstreamError relays a control-plane refusal. A 400 or 422 is about what the page
// sent (a TTL above the realm's cap) and keeps its status, code and field; anything else is this
// backend's trouble with the control plane, a 502 with the API's message.
func writeUpstreamError(w http.ResponseWriter, doing string, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.Status == http.StatusBadRequest || ae.Status == http.StatusUnprocessableEntity {
			writeDevError(w, ae.Status, ae.Code, ae.Field, ae.Message)
			return
		}
		writeDevError(w, http.StatusBadGateway, "upstream", "",
			fmt.Sprintf("%s: the control plane answered %d %s: %s", doing, ae.Status, ae.Code, ae.Message))
		return
	}
	writeDevError(w, http.StatusBadGateway, "upstream", "", doing+": "+err.Error())
}

// writeDevError writes the control plane API's error body, so both pages read one shape.
func writeDevError(w http.ResponseWriter, status int, code, field, msg string) {
	e := map[string]string{"code": code, "message": msg}
	if field != "" {
		e["field"] = field
	}
	writeDevJSON(w, status, map[string]any{"error": e})
}

func writeDevJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}
