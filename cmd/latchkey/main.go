// Command latchkey runs the latchkey control plane (`latchkey serve`) and talks to it:
// API keys, client tokens, realms and snapshots. Client commands speak the HTTP API with an
// admin key; `snapshot inspect` reads a published snapshot directly and verifies it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process the default way
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// Exit codes: 0 success, 1 failure (including an API error), 2 bad usage.
const (
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitCode prints err, if any, as "latchkey: …" and returns the exit code for it.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "latchkey: "+err.Error())
	var u *usageError
	if errors.As(err, &u) {
		fmt.Fprintln(stderr, "Run 'latchkey help' for usage.")
		return exitUsage
	}
	return exitFailure
}

const usageText = `latchkey — authentication for API platforms, checked at the edge.

Usage:
  latchkey serve [flags]                      run the control plane
  latchkey dev [--addr A] [--edge-addr A] [--data-dir D] [--wasm M]
                                              control plane + edge + demo upstream, one process
  latchkey keys create --type T [--name N] [--scope S]... [--org O] [--agent A]... [--expires-in D]
  latchkey keys list [--type T] [--org O] [--include-revoked]
  latchkey keys revoke <id>
  latchkey keys rotate <id> [--grace D]
  latchkey tokens mint --session ID [--scope S]... [--ttl D] [--key-id key_…]
  latchkey realm [show | list | create <name>]
  latchkey snapshot publish | status
  latchkey snapshot inspect [--dir D | --url U] [--realm R] [--trusted-key K | --data-dir D]
  latchkey snapshot plugin-config --for httpwasm|traefik|dapr|envoy [source flags as inspect]
  latchkey version

Client commands take --url (LATCHKEY_URL, default http://127.0.0.1:8080), --admin-key
(LATCHKEY_ADMIN_KEY) and --json (print the API's JSON instead of a table).
Run 'latchkey <command> -h' for a command's flags.
`

// run is the whole program, callable in-process: args without the program name, the
// environment as a lookup function, and the two output streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return usagef("no command given")
	}
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return e.serve(ctx, rest)
	case "dev":
		return e.dev(ctx, rest)
	case "keys", "key":
		return e.keys(ctx, rest)
	case "tokens", "token":
		return e.tokens(ctx, rest)
	case "realm", "realms":
		return e.realm(ctx, rest)
	case "snapshot", "snapshots":
		return e.snapshot(ctx, rest)
	case "version":
		return e.version()
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		return usagef("unknown command %q", cmd)
	}
}

// env is what every command runs with.
type env struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// flagSet returns a FlagSet whose errors come back to run (never exiting the process) and
// whose usage goes to stderr.
func (e *env) flagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: latchkey %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, flags and positional arguments in any order ("keys revoke key_1
// --json" as well as "keys revoke --json key_1"), and returns the positional ones. Flag
// errors become usage errors (the flag package has already printed the message and usage).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil // everything after "--" is positional
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(cmd string, got []string, names ...string) error {
	if len(got) != len(names) {
		return usagef("%s: want %d argument(s) %v, got %d", cmd, len(names), names, len(got))
	}
	return nil
}

// subcommand splits args into a subcommand name and its arguments.
func subcommand(group string, args []string, names ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, usagef("%s: missing subcommand (want one of %v)", group, names)
	}
	for _, n := range names {
		if args[0] == n {
			return n, args[1:], nil
		}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return "help", nil, nil
	}
	return "", nil, usagef("%s: unknown subcommand %q (want one of %v)", group, args[0], names)
}
