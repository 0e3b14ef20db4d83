package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Environment variables of the client commands.
const (
	envURL      = "LATCHKEY_URL"
	envAdminKey = "LATCHKEY_ADMIN_KEY"
	defaultURL  = "http://127.0.0.1:8080"
	// maxResponseBytes bounds what the CLI reads from the API (a 10,000-key page is ~4 MiB).
	maxResponseBytes = 64 << 20
)

// clientFlags are the flags every API command takes.
type clientFlags struct {
	url, adminKey string
	json          bool
}

func (e *env) addClientFlags(fs *flag.FlagSet) *clientFlags {
	c := &clientFlags{}
	fs.StringVar(&c.url, "url", "", "control plane URL [$"+envURL+"] (default "+defaultURL+")")
	fs.StringVar(&c.adminKey, "admin-key", "", "admin key (lk_admin_…) [$"+envAdminKey+"]; prefer the variable: flags show in ps")
	fs.BoolVar(&c.json, "json", false, "print the API's JSON response")
	return c
}

// client speaks the control plane's HTTP API.
type client struct {
	base string
	key  string
	http *http.Client
}

// client resolves --url and --admin-key against the environment (a flag wins).
func (e *env) client(c *clientFlags) (*client, error) {
	base := c.url
	if base == "" {
		base = e.getenv(envURL)
	}
	if base == "" {
		base = defaultURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--url %q: want http://host:port or https://host", base)
	}
	key := c.adminKey
	if key == "" {
		key = e.getenv(envAdminKey)
	}
	if key == "" {
		return nil, usagef("no admin key: pass --admin-key or set %s", envAdminKey)
	}
	return &client{base: strings.TrimRight(base, "/"), key: strings.TrimSpace(key), http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// apiError is an error body from the API: {"error":{"code","message","field","details"}}.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
	Details []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
		Line    int    `json:"line"`
	} `json:"details"`
}

// Error prints "<message> (field)"; the field is left out when the message already starts
// with it, as the API's validation messages do ("scopes[1]: unknown scope").
func (e *apiError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Field != "" && !strings.HasPrefix(e.Message, e.Field+":") {
		b.WriteString(" (" + e.Field + ")")
	}
	for _, d := range e.Details {
		b.WriteString("\n  ")
		if d.Line > 0 {
			fmt.Fprintf(&b, "line %d: ", d.Line)
		}
		if d.Field != "" && !strings.HasPrefix(d.Message, d.Field+":") {
			b.WriteString(d.Field + ": ")
		}
		b.WriteString(d.Message)
	}
	return b.String()
}

// do sends a request and returns the response body of a 2xx answer. body is JSON-encoded
// unless it is a []byte (sent as is with contentType).
func (c *client) do(ctx context.Context, method, path string, body any, contentType string) ([]byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, contentType = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error repeats method and URL; both are the user's own input, never a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the response: %w", method, path, err)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("%s %s: response larger than %d bytes", method, path, maxResponseBytes)
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	var envelope struct {
		Error *apiError `json:"error"`
	}
	if json.Unmarshal(data, &envelope) == nil && envelope.Error != nil && envelope.Error.Message != "" {
		envelope.Error.Status = resp.StatusCode
		return nil, envelope.Error
	}
	return nil, &apiError{Status: resp.StatusCode, Message: fmt.Sprintf("%s %s: HTTP %s", method, path, resp.Status)}
}

// call sends a JSON request and decodes a JSON answer into out (when not nil). It returns
// the raw answer too, for --json.
func (c *client) call(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	data, err := c.do(ctx, method, path, body, "")
	if err != nil {
		return nil, err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected response: %w", method, path, err)
		}
	}
	return data, nil
}

// printJSON writes an API answer indented, as --json output.
func (e *env) printJSON(data []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "  "); err != nil {
		_, err = e.stdout.Write(data)
		return err
	}
	b.WriteByte('\n')
	_, err := e.stdout.Write(b.Bytes())
	return err
}
