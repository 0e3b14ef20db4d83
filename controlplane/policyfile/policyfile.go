// Package policyfile reads a realm's policy from YAML into a policy.Policy. Reading is strict:
// one document, no unknown keys, no duplicate keys, and the result must validate; every
// problem is reported with the YAML line it comes from.
package policyfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

// MaxFileBytes bounds a policy file: it encodes to at most limits.MaxPolicyBytes, and YAML
// is not much larger than the encoding.
const MaxFileBytes = 4 * limits.MaxPolicyBytes

// Error is one problem in a policy file. Err is a *policy.FieldError for validation problems
// (errors.Is(err, policy.ErrInvalid) holds), ErrSyntax for YAML that does not parse or fit the
// model.
type Error struct {
	// File is set by LoadFile; Line is 1-based, or 0 when unknown.
	File string
	Line int
	Err  error
}

// ErrSyntax is matched by problems found while reading the YAML (before validation).
var ErrSyntax = errors.New("policyfile: syntax")

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		if e.File == "" {
			b.WriteString("line ")
		}
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(":")
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// syntaxError is a reading problem; it matches ErrSyntax.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }
func (e *syntaxError) Unwrap() error { return ErrSyntax }

// Parse reads one policy from YAML and validates it. On error it returns nil and every
// problem found, joined (errors.Join), each an *Error.
func Parse(data []byte) (*policy.Policy, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{Err: &syntaxError{"policy file is larger than " + strconv.Itoa(MaxFileBytes) + " bytes"}}
	}
	// First pass: the node tree, for line numbers, and the one-document rule.
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if err == io.EOF {
			return nil, &Error{Line: 1, Err: &syntaxError{"empty policy file"}}
		}
		return nil, yamlErrors(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		return nil, yamlErrors(err)
	default:
		return nil, &Error{Line: extra.Line, Err: &syntaxError{"a policy file holds one YAML document; a second one starts here"}}
	}

	// Second pass: strict decoding into the model.
	var p policy.Policy
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&p); err != nil {
		return nil, yamlErrors(err)
	}
	normalize(&p)

	if err := p.Validate(); err != nil {
		var out []error
		for _, fe := range fieldErrors(err) {
			out = append(out, &Error{Line: lineOf(&root, fe.Field), Err: fe})
		}
		if len(out) == 0 {
			out = append(out, err)
		}
		return nil, errors.Join(out...)
	}
	return &p, nil
}

// LoadFile reads and parses the policy file at path; errors name the file.
func LoadFile(path string) (*policy.Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	p, err := Parse(data)
	if err != nil {
		return nil, withFile(err, path)
	}
	return p, nil
}

func withFile(err error, path string) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		if pe, ok := e.(*Error); ok {
			pe.File = path
		}
	}
	return errors.Join(list...)
}

var (
	// yaml.v3 reports "line N: message" (type errors) and "yaml: line N: message" (syntax).
	lineRe         = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownFieldRe = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// yamlErrors turns a yaml.v3 error into *Errors with line numbers.
func yamlErrors(err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]error, 0, len(msgs))
	for _, m := range msgs {
		e := &Error{}
		if sm := lineRe.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			m = sm[2]
		}
		if fm := unknownFieldRe.FindStringSubmatch(m); fm != nil {
			m = "unknown field " + strconv.Quote(fm[1])
		}
		m = strings.TrimPrefix(m, "yaml: ")
		e.Err = &syntaxError{m}
		out = append(out, e)
	}
	return errors.Join(out...)
}

func fieldErrors(err error) []*policy.FieldError {
	var out []*policy.FieldError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *policy.FieldError
		if errors.As(e, &fe) {
			out = append(out, fe)
		}
	}
	walk(err)
	return out
}

// lineOf finds the line of a validation field path ("routes[3].path",
// "errors[0].messages.scope") in the node tree: the deepest node of the path that exists.
func lineOf(root *yaml.Node, field string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range strings.Split(field, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			next := mappingValue(n, name)
			if next == nil {
				return line
			}
			n = next
			line = n.Line
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			if !ok {
				return line
			}
			i, err := strconv.Atoi(num)
			n = deref(n)
			if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return line
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// normalize makes every empty list and map nil, as policy.Decode returns them, so that a
// parsed policy and its encoded-then-decoded copy are deeply equal.
func normalize(p *policy.Policy) {
	p.Scopes = nilIfEmpty(p.Scopes)
	p.Credentials = nilIfEmpty(p.Credentials)
	p.KeyTypes = nilIfEmpty(p.KeyTypes)
	for i := range p.KeyTypes {
		p.KeyTypes[i].ScopeCap = nilIfEmpty(p.KeyTypes[i].ScopeCap)
		p.KeyTypes[i].DefaultScopes = nilIfEmpty(p.KeyTypes[i].DefaultScopes)
	}
	p.RateClasses = nilIfEmpty(p.RateClasses)
	if p.Tokens != nil {
		p.Tokens.Scopes = nilIfEmpty(p.Tokens.Scopes)
	}
	p.Routes = nilIfEmpty(p.Routes)
	for i := range p.Routes {
		normalizeRoute(&p.Routes[i])
	}
	if p.Unmatched != nil {
		normalizeRoute(p.Unmatched)
	}
	p.Errors = nilIfEmpty(p.Errors)
	for i := range p.Errors {
		if len(p.Errors[i].Messages) == 0 {
			p.Errors[i].Messages = nil
		}
		p.Errors[i].Headers = nilIfEmpty(p.Errors[i].Headers)
	}
}

func normalizeRoute(r *policy.Route) {
	r.Methods = nilIfEmpty(r.Methods)
	r.Scopes = nilIfEmpty(r.Scopes)
	r.Credentials = nilIfEmpty(r.Credentials)
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
