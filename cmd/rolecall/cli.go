package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes, shared by every command.
const (
	exitOK    = 0 // success; for check: allowed
	exitDeny  = 1 // check: denied; who-can: nobody; policy lint: problems found
	exitError = 2 // bad usage or a failure
)

// exitErr carries an exit code up to run.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// usageError is an error in how a command was called.
func usageError(format string, args ...any) error {
	return &exitErr{code: exitError, err: fmt.Errorf(format, args...)}
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, io stdio) error
}

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

func commands() []command {
	return []command{
		{"serve", "run the decision server on a policy", serve},
		{"check", "ask for one decision, from a running server or a policy file", check},
		{"who-can", "list the subjects that may perform an action, from a running server or a policy file", whoCan},
		{"validate-token", "check a JWT access token, against a running server or issuers' key sets", validateToken},
		{"bench", "load a running server and compare Check with the transport's floor", bench},
		{"policy", "work with policy files (lint, test, diff, generate, build, keygen, inspect)", policy},
		{"config", "work with config files (check)", configCmd},
		{"version", "print the version", version},
		{"dev-issuer", "a development token issuer for demos and tests (NOT FOR PRODUCTION)", devIssuer},
	}
}

const topUsage = `rolecall is a sidecar policy decision point: it answers RBAC checks over
localhost gRPC from a cached copy of the policy.

Usage:
  rolecall <command> [flags]

Commands:
%s
Run "rolecall <command> --help" for a command's flags and an example.
`

func run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	sio := stdio{in: in, out: out, err: errOut}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printTopUsage(out)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], sio)
		if err == nil {
			return exitOK
		}
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		var ee *exitErr
		if errors.As(err, &ee) {
			if ee.err != errSilent {
				fmt.Fprintf(errOut, "rolecall %s: %v\n", c.name, ee.err)
			}
			return ee.code
		}
		fmt.Fprintf(errOut, "rolecall %s: %v\n", c.name, err)
		return exitError
	}
	fmt.Fprintf(errOut, "rolecall: unknown command %q\n\n", args[0])
	printTopUsage(errOut)
	return exitError
}

// errSilent marks an exit whose explanation was already printed.
var errSilent = errors.New("")

func printTopUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-15s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, topUsage, b.String())
}

// newFlags returns a flag set whose --help prints what the command does, its
// flags and an example.
func newFlags(name, usage, description, example string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: rolecall %s\n\n%s\n\nFlags:\n", usage, description)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nExample:\n%s\n", example)
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors (already
// printed by the flag package).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitErr{code: exitError, err: errSilent}
	}
	return nil
}

// parseInterspersed parses args like parseFlags but lets flags follow
// positional arguments ("build FILE -o OUT"), and returns the positional
// ones. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
