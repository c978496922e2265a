package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/policygen"
)

const policyUsage = `Usage: rolecall policy <subcommand>

Subcommands:
  lint FILE...        validate policy files and print every problem
  generate            write a deterministic synthetic policy and workload
  build FILE -o OUT   compile a policy into a (signed) bundle for distribution
  keygen              make a key pair for signing bundles
  inspect FILE.snap   show what a bundle holds, and check its signature
  test [PATH...]      run policy test suites (*.test.yaml) and report each failing case
  diff OLD NEW        show what a policy change does: grants gained and lost, per subject
`

func policy(ctx context.Context, args []string, sio stdio) error {
	if len(args) == 0 {
		fmt.Fprint(sio.err, policyUsage)
		return &exitErr{code: exitError, err: errSilent}
	}
	switch args[0] {
	case "lint":
		return lint(args[1:], sio)
	case "generate":
		return generatePolicy(args[1:], sio)
	case "build":
		return buildBundle(args[1:], sio)
	case "keygen":
		return keygen(args[1:], sio)
	case "inspect":
		return inspectBundle(args[1:], sio)
	case "test":
		return policyTest(args[1:], sio)
	case "diff":
		return diffPolicies(ctx, args[1:], sio)
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
		switch {
		case err != nil:
			printProblems(sio.out, path, err)
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

// printProblems prints why a policy document did not compile: each problem of
// a validation error on a line of its own, located in the document, else the
// parse error; every line starts with the file's path.
func printProblems(w io.Writer, path string, err error) {
	var verr *pdp.ValidationError
	if !errors.As(err, &verr) {
		fmt.Fprintf(w, "%s: %v\n", path, err)
		return
	}
	for _, p := range verr.Problems {
		fmt.Fprintf(w, "%s: %s\n", path, p)
	}
}

func generatePolicy(args []string, sio stdio) error {
	fs := newFlags("policy generate", "policy generate [flags]",
		`Write a synthetic policy in the canonical format (JSON), the same for the
same flags and seed, and optionally a workload of checks against it (JSON lines,
for rolecall bench). For benchmarks and for sizing a deployment.`,
		`  rolecall policy generate --subjects 1000000 --orgs 10000 --roles 200 --memberships-per-subject 2 --out big.json --workload checks.jsonl`,
		sio.err)
	var o policygen.Options
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed")
	fs.IntVar(&o.Subjects, "subjects", 1000, "subjects (one in ten an m2m application)")
	fs.IntVar(&o.Orgs, "orgs", 100, "organizations")
	fs.IntVar(&o.Roles, "roles", 20, "roles, half of them organization roles")
	fs.IntVar(&o.MembershipsPerSubject, "memberships-per-subject", 2, "average organization memberships per subject")
	fs.IntVar(&o.Resources, "resources", 20, "resources")
	fs.IntVar(&o.ActionsPerResource, "actions", 8, "actions per resource")
	out := fs.String("out", "", "write the policy to this `file` (default: standard output)")
	workload := fs.String("workload", "", "also write a workload of checks to this `file`")
	checks := fs.Int("checks", 100000, "checks in the workload")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.Subjects < 0 || o.Orgs < 0 || o.Roles < 0 || o.MembershipsPerSubject < 0 || o.Resources < 0 || o.ActionsPerResource < 0 || *checks < 1 {
		return usageError("sizes must not be negative, and --checks at least 1")
	}
	p := policygen.Generate(o)
	data, err := policyfile.MarshalJSON(p)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = sio.out.Write(append(data, '\n'))
	} else {
		err = os.WriteFile(*out, data, 0o644)
	}
	if err != nil {
		return err
	}
	if *workload != "" {
		f, err := os.Create(*workload)
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		enc := json.NewEncoder(w)
		for _, q := range policygen.Workload(o, *checks) {
			if err := enc.Encode(struct {
				Subject  string `json:"subject"`
				Org      string `json:"org,omitempty"`
				Resource string `json:"resource"`
				Action   string `json:"action"`
			}{q.Subject, q.Org, q.Resource, q.Action}); err != nil {
				_ = f.Close()
				return err
			}
		}
		if err := w.Flush(); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
