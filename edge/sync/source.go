package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Source is where an edge reads a realm's snapshots from: the layout the control plane's
// publisher writes, "<realm>/manifest" and "<realm>/objects/<name>".
type Source interface {
	// Get reads the named file. When etag is not empty and the file still has that ETag it
	// returns ErrNotModified and no data, so an unchanged manifest costs no transfer.
	Get(ctx context.Context, name, etag string) (data []byte, newETag string, err error)
}

var (
	// ErrNotModified: the file still has the ETag the caller holds.
	ErrNotModified = errors.New("sync: not modified")
	// ErrNotFound: the source has no such file (yet).
	ErrNotFound = errors.New("sync: not found")
)

// maxFetch bounds one file read from a source: the largest snapshot object, plus slack.
const maxFetch = 1 << 30

// DirSource reads a local directory, the publisher's embedded default. Its ETag is the SHA-256
// of the content, the same as the publisher's directory target.
type DirSource struct{ Root string }

// Get implements Source.
func (d DirSource) Get(_ context.Context, name, etag string) ([]byte, string, error) {
	if !validName(name) {
		return nil, "", errors.New("sync: invalid file name " + strconv.Quote(name))
	}
	data, err := os.ReadFile(filepath.Join(d.Root, filepath.FromSlash(name)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(data)
	tag := hex.EncodeToString(sum[:])
	if etag != "" && etag == tag {
		return nil, tag, ErrNotModified
	}
	return data, tag, nil
}

// HTTPSource reads over HTTP(S): a bucket's website endpoint, a CDN in front of it, or any
// static file server. It sends If-None-Match with the ETag held.
type HTTPSource struct {
	// Base is the URL the layout lives under ("https://cdn.example.com/snapshots/").
	Base string
	// Client defaults to a client with a 30 s timeout.
	Client *http.Client
	// Header is added to every request (e.g. an Authorization for a private bucket).
	Header http.Header
}

var defaultHTTPClient = &http.Client{Timeout: 30 * time.Second}

// Get implements Source.
func (h HTTPSource) Get(ctx context.Context, name, etag string) ([]byte, string, error) {
	if !validName(name) {
		return nil, "", errors.New("sync: invalid file name " + strconv.Quote(name))
	}
	u, err := url.JoinPath(h.Base, name)
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	for k, v := range h.Header {
		req.Header[k] = v
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	c := h.Client
	if c == nil {
		c = defaultHTTPClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return nil, etag, ErrNotModified
	case http.StatusNotFound, http.StatusForbidden:
		// S3 answers 403 for a missing key when listing is not allowed.
		return nil, "", ErrNotFound
	default:
		return nil, "", errors.New("sync: GET " + u + ": " + resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFetch+1))
	if err != nil {
		return nil, "", err
	}
	if len(data) > maxFetch {
		return nil, "", errors.New("sync: GET " + u + ": larger than " + strconv.Itoa(maxFetch) + " bytes")
	}
	return data, resp.Header.Get("ETag"), nil
}

// validName accepts the publisher's names: slash-separated segments of [A-Za-z0-9._-] that
// do not start with '.', so a name can never climb out of the source's root.
func validName(name string) bool {
	if name == "" || len(name) > 1024 {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg[0] == '.' {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

// ManifestName and ObjectName are the publisher's layout.
func ManifestName(realm string) string { return realm + "/manifest" }

// ObjectName is the file holding the object a manifest names ref.
func ObjectName(realm, ref string) string { return realm + "/objects/" + ref }
