package policy

// Reason is why a request was denied. Each reason renders with one fixed status; the
// policy's ErrorSpec for that status says how (ErrorSpec.Messages is keyed by String()).
// The zero value is not a denial: the decision function uses it for allowed requests.
type Reason uint8

const (
	// ReasonMissing: no credential in any of the policy's sources (401).
	ReasonMissing Reason = iota + 1
	// ReasonInvalid: a credential is present but malformed, unknown, or fails verification (401).
	ReasonInvalid
	// ReasonExpired: the key or client token has expired (401).
	ReasonExpired
	// ReasonRevoked: the client token, its session, or the key that minted it is revoked (401).
	// A revoked API key is simply absent from the snapshot and reports ReasonInvalid.
	ReasonRevoked
	// ReasonScope: the credential lacks the route's scopes (403).
	ReasonScope
	// ReasonSession: a client token used on a route bound to another session (403).
	ReasonSession
	// ReasonAgent: the acting-agent header names an agent the key may not act for, or is
	// missing where the route or key type requires it (403).
	ReasonAgent
	// ReasonCredential: the kind of credential (key or token) is not accepted on the route (403).
	ReasonCredential
	// ReasonPath: the request path could mean another path to a normalizing upstream (dot
	// segments, encoded separators, ...) and is refused before routing (403: the request is
	// understood and refused; no credential would make it acceptable).
	ReasonPath
	// ReasonBudget: the credential's org has exhausted its budget (402).
	ReasonBudget
	// ReasonSuspended: the credential's org is suspended (403: the credential is genuine, so
	// 401 would invite the caller to retry with it; the org may not act).
	ReasonSuspended
	// ReasonRateLimited: the credential's rate class is exhausted (429).
	ReasonRateLimited
	// ReasonUnavailable: no usable snapshot (503).
	ReasonUnavailable

	// numReasons is one more than the largest reason, for tables indexed by Reason.
	numReasons
)

var reasonNames = [numReasons]string{
	0:                 "none",
	ReasonMissing:     "missing",
	ReasonInvalid:     "invalid",
	ReasonExpired:     "expired",
	ReasonRevoked:     "revoked",
	ReasonScope:       "scope",
	ReasonSession:     "session",
	ReasonAgent:       "agent",
	ReasonCredential:  "credential",
	ReasonPath:        "path",
	ReasonBudget:      "budget",
	ReasonSuspended:   "suspended",
	ReasonRateLimited: "rate_limited",
	ReasonUnavailable: "unavailable",
}

var reasonStatus = [numReasons]int{
	0:                 200,
	ReasonMissing:     401,
	ReasonInvalid:     401,
	ReasonExpired:     401,
	ReasonRevoked:     401,
	ReasonScope:       403,
	ReasonSession:     403,
	ReasonAgent:       403,
	ReasonCredential:  403,
	ReasonPath:        403,
	ReasonBudget:      402,
	ReasonSuspended:   403,
	ReasonRateLimited: 429,
	ReasonUnavailable: 503,
}

// String returns the reason's name as used in ErrorSpec.Messages and the {{reason}}
// placeholder ("missing", "rate_limited", ...); "none" for the zero value.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Status returns the HTTP status the reason renders with (200 for the zero value).
// An out-of-range reason reports 503, like ReasonUnavailable: the core fails closed.
func (r Reason) Status() int {
	if r < numReasons {
		return reasonStatus[r]
	}
	return 503
}

// ParseReason returns the reason with the given name; the zero value ("none") is not a
// reason and is not accepted.
func ParseReason(name string) (Reason, bool) {
	for r := ReasonMissing; r < numReasons; r++ {
		if reasonNames[r] == name {
			return r, true
		}
	}
	return 0, false
}

// Statuses a policy may render, in ascending order.
var renderedStatuses = [...]int{401, 402, 403, 429, 503}

// defaultMessages are used when neither the policy's ErrorSpec nor a route says anything.
var defaultMessages = [numReasons]string{
	ReasonMissing:     "A credential is required.",
	ReasonInvalid:     "The credential is not valid.",
	ReasonExpired:     "The credential has expired.",
	ReasonRevoked:     "The credential has been revoked.",
	ReasonScope:       "The credential lacks the scope this request requires.",
	ReasonSession:     "The token is not valid for this session.",
	ReasonAgent:       "The credential may not act for this agent.",
	ReasonCredential:  "This kind of credential is not accepted here.",
	ReasonPath:        "The request path is not allowed.",
	ReasonBudget:      "The organization has exhausted its budget.",
	ReasonSuspended:   "The organization is suspended.",
	ReasonRateLimited: "Too many requests.",
	ReasonUnavailable: "The service is temporarily unavailable.",
}
