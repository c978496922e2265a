package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

const policyUsage = `Usage: rolecall policy <subcommand>

Subcommands:
  lint FILE...   validate policy files and print every problem
`

func policy(ctx context.Context, args []string, sio stdio) error {
	if len(args) == 0 {
		fmt.Fprint(sio.err, policyUsage)
		return &exitErr{code: exitError, err: errSilent}
	}
	switch args[0] {
	case "lint":
		return lint(args[1:], sio)
	case "-h", "--help", "help":
		fmt.Fprint(sio.out, policyUsage)
		return nil
	default:
		fmt.Fprint(sio.err, policyUsage)
		return usageError("unknown subcommand %q", args[0])
	}
}

func lint(args []string, sio stdio) error {
	fs := newFlags("policy lint", "policy lint FILE...",
		`Validate policy files (YAML or JSON) exactly as the server would, and print
every problem with its path in the document. Exit code: 0 when every file is
valid, 1 when any has problems, 2 when a file cannot be read.`,
		`  rolecall policy lint examples/bookstore.yaml`,
		sio.err)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError("name at least one policy file")
	}
	code := exitOK
	for _, path := range fs.Args() {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(sio.err, "%v\n", err)
			code = exitError
			continue
		}
		snap, err := policyfile.Compile(data, policyfile.DetectFormat(path, data))
		var verr *pdp.ValidationError
		switch {
		case errors.As(err, &verr):
			for _, p := range verr.Problems {
				fmt.Fprintf(sio.out, "%s: %s\n", path, p)
			}
			code = max(code, exitDeny)
		case err != nil:
			fmt.Fprintf(sio.out, "%s: %v\n", path, err)
			code = max(code, exitDeny)
		default:
			c := snap.Counts()
			fmt.Fprintf(sio.out, "%s: ok (revision %s: %d resources, %d roles, %d organizations, %d subjects)\n",
				path, snap.Revision(), c.Resources, c.Roles, c.Organizations, c.Subjects)
		}
	}
	if code != exitOK {
		return &exitErr{code: code, err: errSilent}
	}
	return nil
}
