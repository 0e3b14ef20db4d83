package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// Error codes of the API's error body, one per status (API.md, "Errors").
const (
	CodeInvalidJSON          = "invalid_json"
	CodeInvalidRequest       = "invalid_request"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeConflict             = "conflict"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
)

// Error is what a handler returns to answer with an error body:
// {"error":{"code","message","field"}}. Message and Field go to the client verbatim, so they
// never carry a secret or an internal error's text.
type Error struct {
	Status  int
	Code    string
	Message string
	// Field names the JSON path (or query or path parameter) at fault, "" when none.
	Field string
	// Details lists every problem when there are several (a policy with many errors).
	Details []FieldProblem
	// challenge is the WWW-Authenticate value of a 401.
	challenge string
}

// FieldProblem is one entry of Error.Details.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return "api: " + e.Code + ": " + e.Field + ": " + e.Message
	}
	return "api: " + e.Code + ": " + e.Message
}

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Field   string         `json:"field,omitempty"`
	Details []FieldProblem `json:"details,omitempty"`
}

func badJSON(field, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Field: field, Message: msg}
}

// invalid is a 422: the request is well-formed but a field's value is not acceptable. The
// message is prefixed with the field, as API.md's example shows.
func invalid(field, msg string) *Error {
	m := msg
	if field != "" {
		m = field + ": " + msg
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeInvalidRequest, Field: field, Message: m}
}

func forbidden(field, msg string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Field: field, Message: msg}
}

func notFound(msg string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: msg}
}

func conflict(field, msg string) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeConflict, Field: field, Message: msg}
}

func unavailable(msg string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: msg}
}

// Challenges of a 401 (RFC 6750 section 3).
const (
	challengeMissing = `Bearer realm="latchkey"`
	challengeInvalid = `Bearer realm="latchkey", error="invalid_token"`
)

func unauthorized(msg string, presented bool) *Error {
	c := challengeMissing
	if presented {
		c = challengeInvalid
	}
	return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: msg, challenge: c}
}

// errStore translates a store error. Not found, conflict and invalid are the caller's doing
// and keep the store's field; anything else means the database did not answer as it should,
// which the client sees as 503 (the error is logged by the caller's wrapper, not shown).
func errStore(err error, what string) error {
	var se *store.Error
	errors.As(err, &se)
	switch {
	case errors.Is(err, store.ErrNotFound):
		entity := what
		if se != nil && se.Entity != "" {
			entity = se.Entity
		}
		return notFound(entity + " not found")
	case errors.Is(err, store.ErrConflict):
		field, reason := "", "already exists"
		if se != nil {
			field = se.Field
			if se.Reason != "" {
				reason = se.Reason
			}
		}
		msg := what + " " + reason
		if field != "" {
			msg = what + " " + field + " " + reason
		}
		return conflict(field, msg)
	case errors.Is(err, store.ErrInvalid):
		field, reason := "", "invalid"
		if se != nil {
			field, reason = se.Field, se.Reason
		}
		return invalid(field, reason)
	}
	return &storeFailure{err: err}
}

// storeFailure is a store error the client sees as 503; the wrapper logs err.
type storeFailure struct{ err error }

func (e *storeFailure) Error() string { return "api: store: " + e.err.Error() }
func (e *storeFailure) Unwrap() error { return e.err }

func itoa(n int) string { return strconv.Itoa(n) }
