package publisher

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// DirTarget publishes into a local directory, the embedded default: an edge on the same host
// reads it directly, or any static file server serves it.
//
// Every write goes to a temporary file in the destination directory, is fsynced, and then
// takes its name atomically, so a reader sees a whole file or none, even across a crash.
// Objects take their name with link(2), which fails when the name exists: a second write of
// an object is a no-op and never replaces what a reader may be reading.
//
// The manifest's conditional write compares the current manifest's ETag (hex SHA-256 of its
// bytes) with the expected one and renames the new manifest into place while holding a lock:
// a mutex within the process and, on Unix, flock(2) on "<dir>/.manifest.lock" across
// processes (released by the kernel if a holder dies). So every writer on the host, and on a
// network filesystem that honours flock, gets compare-and-swap semantics. Elsewhere only
// writers in one process are ordered (see lock_other.go). Readers take no lock: rename is
// atomic for them.
type DirTarget struct {
	dir string
	mu  sync.Mutex // orders manifest writes within the process
}

var _ Target = (*DirTarget)(nil)

// lockName is the lock file of manifest writes. Names starting with '.' are never valid
// object names, so it cannot collide with one, and List skips it.
const lockName = ".manifest.lock"

// NewDirTarget publishes into dir, creating it if needed.
func NewDirTarget(dir string) (*DirTarget, error) {
	if dir == "" {
		return nil, &Error{Op: "open", Err: errors.New("empty directory")}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, &Error{Op: "open", Name: dir, Err: err}
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, &Error{Op: "open", Name: dir, Err: err}
	}
	return &DirTarget{dir: abs}, nil
}

// Dir returns the directory the target writes into.
func (d *DirTarget) Dir() string { return d.dir }

func (d *DirTarget) path(name string) string {
	return filepath.Join(d.dir, filepath.FromSlash(name))
}

// etagOf is a DirTarget ETag: the hex SHA-256 of the content.
func etagOf(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// writeTemp writes data to a new temporary file beside path and fsyncs it.
func writeTemp(path string, data []byte) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// PutObject writes an object unless one of that name exists.
func (d *DirTarget) PutObject(ctx context.Context, name string, data []byte) error {
	if err := checkName("put", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: "put", Name: name, Err: err}
	}
	p := d.path(name)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	tmp, err := writeTemp(p, data)
	if err != nil {
		return &Error{Op: "put", Name: name, Err: err}
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, p); err != nil && !errors.Is(err, fs.ErrExist) {
		return &Error{Op: "put", Name: name, Err: err}
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return &Error{Op: "put", Name: name, Err: err}
	}
	return nil
}

// PutManifest replaces the manifest if its current ETag is prevETag ("" = must not exist).
func (d *DirTarget) PutManifest(ctx context.Context, name string, data []byte, prevETag string) (string, error) {
	if err := checkName("put manifest", name); err != nil {
		return "", err
	}
	p := d.path(name)
	tmp, err := writeTemp(p, data)
	if err != nil {
		return "", &Error{Op: "put manifest", Name: name, Err: err}
	}
	defer os.Remove(tmp)

	d.mu.Lock()
	defer d.mu.Unlock()
	unlock, err := lockFile(ctx, filepath.Join(d.dir, lockName))
	if err != nil {
		return "", &Error{Op: "put manifest", Name: name, Err: err}
	}
	defer unlock()

	cur, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if prevETag != "" {
			return "", &Error{Op: "put manifest", Name: name, Err: ErrPrecondition}
		}
	case err != nil:
		return "", &Error{Op: "put manifest", Name: name, Err: err}
	case prevETag == "" || etagOf(cur) != prevETag:
		return "", &Error{Op: "put manifest", Name: name, Err: ErrPrecondition}
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", &Error{Op: "put manifest", Name: name, Err: err}
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return "", &Error{Op: "put manifest", Name: name, Err: err}
	}
	return etagOf(data), nil
}

// Get reads a file and its ETag.
func (d *DirTarget) Get(ctx context.Context, name string) ([]byte, string, error) {
	if err := checkName("get", name); err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", &Error{Op: "get", Name: name, Err: err}
	}
	data, err := os.ReadFile(d.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", &Error{Op: "get", Name: name, Err: ErrNotFound}
	}
	if err != nil {
		return nil, "", &Error{Op: "get", Name: name, Err: err}
	}
	return data, etagOf(data), nil
}

// List returns the names of files under prefix, sorted. Temporary files and the lock file
// (names starting with '.') are not listed.
func (d *DirTarget) List(ctx context.Context, prefix string) ([]string, error) {
	if err := checkPrefix("list", prefix); err != nil {
		return nil, err
	}
	// Walk only the deepest directory the prefix names completely.
	root := d.dir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		root = d.path(prefix[:i])
	}
	var out []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), ".") && p != root {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(d.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, prefix) {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		return nil, &Error{Op: "list", Name: prefix, Err: err}
	}
	slices.Sort(out)
	return out, nil
}
