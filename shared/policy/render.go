package policy

import (
	"strconv"
	"strings"
)

// Response is a rendered denial: what a host writes back instead of forwarding the request.
// Responses are built when a policy is compiled and shared by every request; callers must not
// modify them.
type Response struct {
	Status int
	// Headers in order: Content-Type (unless the policy's ErrorSpec sets one), the ErrorSpec's
	// headers as written, then WWW-Authenticate when the challenge applies and the ErrorSpec
	// does not set one itself.
	Headers []Header
	Body    []byte
}

// Header returns the value of the first header named name (ASCII case-insensitive), or "".
func (r *Response) Header(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// defaultBody is the template used for a status the policy does not render itself, and for
// an ErrorSpec with an empty Body.
const defaultBody = `{"error":"{{reason}}","message":"{{message}}"}`

// renderTemplate substitutes the placeholders of tmpl into dst. ok is false when tmpl holds a
// "{{" that does not start one of {{message}}, {{status}}, {{reason}}.
func renderTemplate(dst []byte, tmpl, message string, status int, reason string) (out []byte, ok bool) {
	for {
		i := strings.Index(tmpl, "{{")
		if i < 0 {
			return append(dst, tmpl...), true
		}
		dst = append(dst, tmpl[:i]...)
		tmpl = tmpl[i:]
		switch {
		case strings.HasPrefix(tmpl, "{{message}}"):
			dst = appendJSONString(dst, message)
			tmpl = tmpl[len("{{message}}"):]
		case strings.HasPrefix(tmpl, "{{status}}"):
			dst = strconv.AppendInt(dst, int64(status), 10)
			tmpl = tmpl[len("{{status}}"):]
		case strings.HasPrefix(tmpl, "{{reason}}"):
			dst = appendJSONString(dst, reason)
			tmpl = tmpl[len("{{reason}}"):]
		default:
			return dst, false
		}
	}
}

// templateSample is substituted for {{message}} when a template is validated: it needs
// escaping, so a template that puts {{message}} outside a JSON string fails the check.
const templateSample = "sample \"message\" \\ \u00e9\n"

// checkTemplate returns "" if tmpl renders to valid JSON for every status and reason it may be
// used with, or what is wrong with it.
func checkTemplate(tmpl string, status int) string {
	for r := ReasonMissing; r < numReasons; r++ {
		if r.Status() != status {
			continue
		}
		body, ok := renderTemplate(nil, tmpl, templateSample, status, r.String())
		if !ok {
			return "unknown placeholder (only {{message}}, {{status}} and {{reason}} exist)"
		}
		if !validJSON(body) {
			return "is not valid JSON once placeholders are substituted (" + strconv.Quote(string(body)) + ")"
		}
	}
	return ""
}

// challengeHeader is the RFC 6750 challenge name.
const challengeHeader = "WWW-Authenticate"

// renderer builds the Responses of one realm.
type renderer struct {
	realm     string
	challenge bool
	specs     [numReasons]*ErrorSpec
}

func newRenderer(realm string, challenge bool, errs []ErrorSpec) *renderer {
	rd := &renderer{realm: realm, challenge: challenge}
	for i := range errs {
		for r := ReasonMissing; r < numReasons; r++ {
			if r.Status() == errs[i].Status {
				rd.specs[r] = &errs[i]
			}
		}
	}
	return rd
}

// message picks the text for r: the ErrorSpec's per-reason message, else its Message, else
// latchkey's default for the reason.
func (rd *renderer) message(r Reason) string {
	if s := rd.specs[r]; s != nil {
		if m, ok := s.Messages[r.String()]; ok {
			return m
		}
		if s.Message != "" {
			return s.Message
		}
	}
	return defaultMessages[r]
}

// render builds the response for r with the given message.
func (rd *renderer) render(r Reason, message string) *Response {
	status := r.Status()
	resp := &Response{Status: status}
	tmpl := defaultBody
	var extra []Header
	if s := rd.specs[r]; s != nil {
		if s.Body != "" {
			tmpl = s.Body
		}
		extra = s.Headers
	}
	// Validate has checked the template; a failure here is a bug, and an empty JSON object
	// is still a valid body.
	body, ok := renderTemplate(nil, tmpl, message, status, r.String())
	if !ok {
		body = []byte("{}")
	}
	resp.Body = body

	if !hasHeader(extra, "Content-Type") {
		resp.Headers = append(resp.Headers, Header{Name: "Content-Type", Value: "application/json"})
	}
	resp.Headers = append(resp.Headers, extra...)
	if rd.challenge && !hasHeader(extra, challengeHeader) {
		if v := rd.challengeValue(r); v != "" {
			resp.Headers = append(resp.Headers, Header{Name: challengeHeader, Value: v})
		}
	}
	return resp
}

// challengeValue is the RFC 6750 challenge for r, or "" when r carries none: every 401 has
// one (error="invalid_token" when a credential was presented and rejected, none when it was
// missing, RFC 6750 §3.1), and a 403 for scope says insufficient_scope.
func (rd *renderer) challengeValue(r Reason) string {
	v := "Bearer"
	if rd.realm != "" {
		// Validate restricts realm names to characters that need no quoting.
		v += ` realm="` + rd.realm + `"`
	}
	var code string
	switch r {
	case ReasonMissing:
	case ReasonInvalid, ReasonExpired, ReasonRevoked:
		code = "invalid_token"
	case ReasonScope:
		code = "insufficient_scope"
	default:
		return ""
	}
	if code != "" {
		if rd.realm != "" {
			v += ","
		}
		v += ` error="` + code + `"`
	}
	return v
}

func hasHeader(hs []Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// denyMessageReasons are the reasons a route's DenyMessage replaces the message of: those
// that mean "this caller may not do this here". Other 403s (a session mismatch, an acting
// agent, a suspended org) describe something the route's message would misstate.
var denyMessageReasons = [...]Reason{ReasonScope, ReasonCredential}

// defaultResponses are used when no policy is loaded at all.
var defaultResponses = func() (t [numReasons]*Response) {
	rd := newRenderer("", true, nil)
	for r := ReasonMissing; r < numReasons; r++ {
		t[r] = rd.render(r, defaultMessages[r])
	}
	return t
}()

// DefaultError is latchkey's rendering of r when no policy is loaded (typically 503 before the
// first snapshot): the default JSON body and a bare Bearer challenge on 401. An unknown reason
// renders as ReasonUnavailable.
func DefaultError(r Reason) *Response {
	if r == 0 || r >= numReasons {
		r = ReasonUnavailable
	}
	return defaultResponses[r]
}
