package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// Identifier rules of API.md ("Ids"), shared by the validator tags and the OpenAPI document.
const (
	maxSessionBytes = 128
	maxOrgBytes     = 128
	maxRealmBytes   = 63
	maxNameBytes    = 256 // the store's bound on a key name
	maxCursorBytes  = 1024
	maxTargetBytes  = 1024
)

// newValidator builds the validator every request struct goes through. Field names in its
// errors are the json names, so a problem is reported at its JSON path ("keys[3].hash").
func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	custom := map[string]func(string) bool{
		"scope":      validScope,
		"session_id": func(s string) bool { return validIDText(s, maxSessionBytes) },
		"org_id":     func(s string) bool { return validIDText(s, maxOrgBytes) },
		"agent_id":   func(s string) bool { return validIDText(s, maxOrgBytes) },
		"key_id":     func(s string) bool { _, err := apikey.ParseID(s); return err == nil },
		"realm_name": validRealmName,
		"rfc3339":    func(s string) bool { _, err := parseTime(s); return err == nil },
		"sha256hex":  func(s string) bool { _, err := apikey.ParseHash(s); return err == nil },
		"text":       validText,
		"last4":      validLast4,
		"key_prefix": validPrefix,
	}
	for tag, fn := range custom {
		// RegisterValidation only fails for an empty tag or nil function.
		_ = v.RegisterValidation(tag, func(fl validator.FieldLevel) bool {
			f := fl.Field()
			return f.Kind() == reflect.String && fn(f.String())
		})
	}
	return v
}

// validScope: "*", or a scope-token of RFC 6749 (printable ASCII but space, '"' and '\')
// without '*', at most limits.MaxScopeBytes — the rule the policy's scope dictionary follows.
func validScope(s string) bool {
	if s == "*" {
		return true
	}
	if len(s) == 0 || len(s) > limits.MaxScopeBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || c == '"' || c == '\\' || c == '*' {
			return false
		}
	}
	return true
}

// validIDText: 1..max of [A-Za-z0-9._:-] (session and org ids).
func validIDText(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// validRealmName: 1..63 of [a-z0-9-], starting with a letter.
func validRealmName(s string) bool {
	if len(s) == 0 || len(s) > maxRealmBytes || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// validText: UTF-8 without control characters (names are shown in listings and logs).
func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func validLast4(s string) bool {
	if len(s) > 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func validPrefix(s string) bool {
	return apikey.Spec{Prefix: s, Format: apikey.FormatBase62CRC32}.Validate() == nil
}

// parseTime reads an RFC 3339 time whose year the store can hold.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return time.Time{}, errors.New("year out of range")
	}
	return t.UTC(), nil
}

// problem turns the first validation error into a 422 naming the field's JSON path.
func problem(err error) error {
	var ve validator.ValidationErrors
	if !errors.As(err, &ve) || len(ve) == 0 {
		return err // an InvalidValidationError: a programming error, logged as internal
	}
	fe := ve[0]
	field := fe.Namespace()
	// The namespace starts with the Go struct's name: drop it to keep the JSON path.
	if _, rest, ok := strings.Cut(field, "."); ok {
		field = rest
	}
	return invalid(field, tagMessage(fe))
}

func tagMessage(fe validator.FieldError) string {
	kind := fe.Kind()
	if kind == reflect.Pointer {
		kind = fe.Type().Elem().Kind()
	}
	unit := "characters"
	if kind == reflect.Slice || kind == reflect.Array || kind == reflect.Map {
		unit = "entries"
	}
	switch fe.Tag() {
	case "required":
		return "is required"
	case "max":
		if kind == reflect.String || unit == "entries" {
			return "must have at most " + fe.Param() + " " + unit
		}
		return "must be at most " + fe.Param()
	case "min":
		if kind == reflect.String || unit == "entries" {
			return "must have at least " + fe.Param() + " " + unit
		}
		return "must be at least " + fe.Param()
	case "unique":
		return "must not repeat an entry"
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "scope":
		return "must be \"*\" or a scope name (1.." + itoa(limits.MaxScopeBytes) + " printable ASCII characters other than space, '\"', '\\' and '*')"
	case "session_id":
		return "must be a session id: 1.." + itoa(maxSessionBytes) + " characters of [A-Za-z0-9._:-]"
	case "org_id":
		return "must be an org id: 1.." + itoa(maxOrgBytes) + " characters of [A-Za-z0-9._:-]"
	case "agent_id":
		return "must be an agent id: 1.." + itoa(maxOrgBytes) + " characters of [A-Za-z0-9._:-]"
	case "key_id":
		return "must be a key id: \"key_\" followed by 20 lowercase hex characters"
	case "realm_name":
		return "must be a realm name: 1.." + itoa(maxRealmBytes) + " characters of [a-z0-9-], starting with a letter"
	case "rfc3339":
		return "must be an RFC 3339 time (2026-01-02T15:04:05Z)"
	case "sha256hex":
		return "must be a SHA-256 hash: 64 lowercase hex characters"
	case "text":
		return "must be UTF-8 text without control characters"
	case "last4":
		return "must be at most 4 characters of [A-Za-z0-9_-]"
	case "key_prefix":
		return "must be 1.." + itoa(limits.MaxPrefixBytes) + " characters of [a-z0-9_]"
	}
	return "fails " + fe.Tag()
}

// readBody reads a request body of at most limit bytes. A missing body gives nil.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
				Message: "request body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
		}
		return nil, badJSON("", "request body could not be read")
	}
	return b, nil
}

// requireMediaType refuses a body whose Content-Type is not one of types.
func requireMediaType(r *http.Request, types ...string) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil {
		for _, t := range types {
			if mt != t {
				continue
			}
			if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
				break
			}
			return nil
		}
	}
	return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
		Message: "Content-Type must be " + strings.Join(types, " or ") + " (UTF-8)"}
}

// decodeJSON reads the request's JSON body into dst strictly and validates it. An empty body
// is refused unless optional, in which case dst keeps its zero value (and is still validated,
// so defaults apply uniformly).
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	body, err := readBody(w, r, s.maxBody)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if !optional {
			return badJSON("", "request body is required: a JSON object")
		}
	} else {
		if err := requireMediaType(r, "application/json"); err != nil {
			return err
		}
		if err := unmarshalStrict(body, dst, ""); err != nil {
			return err
		}
	}
	if err := s.validate.Struct(dst); err != nil {
		return problem(err)
	}
	return nil
}

// unmarshalStrict decodes exactly one JSON value into dst, refusing unknown fields. Errors
// are 400 invalid_json naming the field (prefixed with at, for elements decoded one by one).
func unmarshalStrict(data []byte, dst any, at string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err, at)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badJSON(at, "unexpected data after the JSON value")
	}
	return nil
}

func jsonProblem(err error, at string) error {
	join := func(f string) string {
		switch {
		case at == "":
			return f
		case f == "":
			return at
		}
		return at + "." + f
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badJSON(at, "malformed JSON at byte "+strconv.FormatInt(se.Offset, 10))
	case errors.As(err, &te):
		field := join(te.Field)
		want := jsonType(te.Type)
		if field == "" {
			return badJSON("", "request body must be a JSON "+want+", not "+te.Value)
		}
		return badJSON(field, field+": must be "+article(want)+", not "+te.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badJSON(at, "truncated JSON")
	}
	// encoding/json reports an unknown field only in its message.
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		name, uerr := strconv.Unquote(msg[len(unknown):])
		if uerr != nil {
			name = msg[len(unknown):]
		}
		field := join(name)
		return badJSON(field, field+": unknown field")
	}
	return badJSON(at, "malformed JSON")
}

func article(t string) string {
	switch t {
	case "array", "integer", "object":
		return "an " + t
	}
	return "a " + t
}

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}

// query reads a request's query parameters into typed values, strictly: an unknown
// parameter, a repeated one or a value of the wrong type is a 422 naming it.
type query struct {
	v    url.Values
	err  error
	used map[string]bool
}

func newQuery(r *http.Request) *query {
	q := &query{used: map[string]bool{}}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		q.err = invalid("", "malformed query string")
	}
	q.v = v
	return q
}

func (q *query) get(name string) (string, bool) {
	q.used[name] = true
	vs, ok := q.v[name]
	if !ok {
		return "", false
	}
	if len(vs) > 1 && q.err == nil {
		q.err = invalid(name, "is given more than once")
	}
	return vs[0], true
}

func (q *query) str(name string) string {
	s, _ := q.get(name)
	return s
}

func (q *query) boolean(name string) *bool {
	s, ok := q.get(name)
	if !ok {
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		if q.err == nil {
			q.err = invalid(name, "must be true or false")
		}
		return nil
	}
	return &b
}

func (q *query) integer(name string) *int64 {
	s, ok := q.get(name)
	if !ok {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if q.err == nil {
			q.err = invalid(name, "must be an integer")
		}
		return nil
	}
	return &n
}

// done reports the first problem, including parameters the route does not know.
func (q *query) done() error {
	if q.err != nil {
		return q.err
	}
	var unknown []string
	for name := range q.v {
		if !q.used[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return invalid(unknown[0], "unknown query parameter")
	}
	return nil
}
