package publisher

import (
	"context"
	"errors"
	"strings"
)

var (
	// ErrNoPolicy: the realm has no policy yet, so there is nothing an edge could decide from.
	ErrNoPolicy = errors.New("publisher: realm has no policy")
	// ErrNotFound: a Target holds no object or manifest of that name.
	ErrNotFound = errors.New("publisher: not found")
	// ErrPrecondition: a conditional manifest write lost: the manifest is not (or no longer)
	// the one the writer last saw, because another replica published in between.
	ErrPrecondition = errors.New("publisher: manifest changed since it was read (precondition failed)")
	// ErrName: an object name a Target refuses (see Target).
	ErrName = errors.New("publisher: invalid object name")
	// ErrVersionBehind: the target holds a manifest of ours with a version far above the
	// store's (more than the publisher skips to catch up), so edges would refuse what this
	// publisher writes as a rollback. It happens when a store is reset but its snapshot
	// target is not.
	ErrVersionBehind = errors.New("publisher: target holds a newer snapshot version than the store")
)

// Error says which operation on which realm or object failed. Err is one of the sentinel
// errors above or the underlying cause (a store, snapshot or I/O error).
type Error struct {
	Op    string // "build", "publish", "put", "put manifest", "get", "list", …
	Realm string // may be empty
	Name  string // object name, or what part of a build failed; may be empty
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("publisher: ")
	b.WriteString(e.Op)
	if e.Realm != "" {
		b.WriteString(" realm ")
		b.WriteString(e.Realm)
	}
	if e.Name != "" {
		b.WriteString(" ")
		b.WriteString(e.Name)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "publisher: "))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Target is where snapshots go. Object names are relative, slash-separated paths
// ("<realm>/objects/<name>", "<realm>/manifest") whose segments are non-empty, do not start
// with '.', and use only [A-Za-z0-9._-]: names that are safe as file paths and object keys
// everywhere. A Target refuses other names with ErrName.
type Target interface {
	// PutObject writes an immutable object (content-addressed names: rewriting the same name is a no-op).
	PutObject(ctx context.Context, name string, data []byte) error
	// PutManifest replaces the manifest only if the current one has etag prevETag ("" = must not exist):
	// a conditional write, so two replicas never publish over each other. Returns the new ETag.
	// A lost race returns an error matching ErrPrecondition.
	PutManifest(ctx context.Context, name string, data []byte, prevETag string) (etag string, err error)
	// Get reads an object or manifest with its ETag; ErrNotFound when absent.
	Get(ctx context.Context, name string) (data []byte, etag string, err error)
	// List names under a prefix (for inspection and garbage collection).
	List(ctx context.Context, prefix string) ([]string, error)
}

// ManifestName is the name of a realm's manifest in a Target.
func ManifestName(realm string) string { return realm + "/manifest" }

// ObjectName is the name in a Target of the object a manifest refers to as ref.
func ObjectName(realm, ref string) string { return realm + "/objects/" + ref }

// checkName enforces Target's naming rule.
func checkName(op, name string) error {
	if name == "" || len(name) > 1024 {
		return &Error{Op: op, Name: name, Err: ErrName}
	}
	seg := 0 // length of the current segment
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '/':
			if seg == 0 {
				return &Error{Op: op, Name: name, Err: ErrName}
			}
			seg = 0
			continue
		case c == '.' && seg == 0:
			return &Error{Op: op, Name: name, Err: ErrName}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return &Error{Op: op, Name: name, Err: ErrName}
		}
		seg++
	}
	if seg == 0 {
		return &Error{Op: op, Name: name, Err: ErrName}
	}
	return nil
}

// checkPrefix accepts "" or a prefix that is a name or a name followed by '/'.
func checkPrefix(op, prefix string) error {
	if prefix == "" {
		return nil
	}
	return checkName(op, strings.TrimSuffix(prefix, "/"))
}
