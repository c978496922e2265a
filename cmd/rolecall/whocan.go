package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/status"

	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/internal/v1conv"
	"github.com/rolecall/rolecall/pdp"
)

func whoCan(ctx context.Context, args []string, sio stdio) error {
	fs := newFlags("who-can", "who-can --resource R --action A [--org O] [--limit N] [--all] [flags]",
		`List the subjects that may perform an action on a resource, inside an
organization when --org is set, each with the role that grants it (the role
check names), in the policy document's order. By default the question goes to
a running server (--addr or --unix-socket), which answers it only to callers on
its host unless its who_can setting says otherwise; with --policy FILE it is
answered locally.

The answer comes page by page: --limit subjects at most per page (0 for the
server's 100, at most 1000). Without --all one page is printed and, when there
is more, the --page-token that continues it; --all follows the pages to the
end. Every page comes from one policy revision: a token of another is refused.

Exit code: 0 some subject listed (or more pages to ask for), 1 none, 2 error.`,
		`  rolecall who-can --resource https://api.store.io/orders --action read:order
  rolecall who-can --org acme --resource organization --action invite:member --policy examples/bookstore.yaml
  rolecall who-can --resource https://api.store.io/products --action read:product --limit 2 --all --json`,
		sio.err)
	var q pdp.SubjectQuery
	fs.StringVar(&q.Org, "org", "", "organization `id`; empty for global roles")
	fs.StringVar(&q.Resource, "resource", "", "resource `id`; required")
	fs.StringVar(&q.Action, "action", "", "`action` on the resource; required")
	fs.IntVar(&q.Limit, "limit", 0, "subjects per page, at most 1000; 0 for 100")
	fs.StringVar(&q.PageToken, "page-token", "", "continue after the page that printed this `token`")
	all := fs.Bool("all", false, "follow the page tokens to the last page")
	srv := registerServerFlags(fs)
	policyPath := fs.String("policy", "", "answer locally from this policy `FILE` instead of asking a server")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for each page from the server")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	if err := q.Validate(); err != nil {
		return usageError("%v", flagError(err))
	}

	var next func(pdp.SubjectQuery) (pdp.SubjectPage, error)
	if *policyPath != "" {
		dec, err := localDecider(*policyPath, nil)
		if err != nil {
			return err
		}
		next = func(q pdp.SubjectQuery) (pdp.SubjectPage, error) {
			page, err := dec.ListSubjects(ctx, q, true)
			return page, flagError(err)
		}
	} else {
		conn, target, err := srv.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		api := rolecallv1.NewPolicyDecisionServiceClient(conn)
		next = func(q pdp.SubjectQuery) (pdp.SubjectPage, error) {
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			resp, err := api.ListSubjects(ctx, v1conv.SubjectsRequest(q))
			if err != nil {
				st := status.Convert(err)
				return pdp.SubjectPage{}, fmt.Errorf("%s: %s: %s", target, st.Code(), st.Message())
			}
			return v1conv.SubjectPage(resp), nil
		}
	}

	// The pages, joined: with --all, every page of one revision.
	answer, err := next(q)
	if err != nil {
		return err
	}
	for *all && answer.NextPageToken != "" {
		q.PageToken = answer.NextPageToken
		page, err := next(q)
		if err != nil {
			return err
		}
		answer.Subjects = append(answer.Subjects, page.Subjects...)
		answer.NextPageToken = page.NextPageToken
	}
	if err := printSubjects(sio, q, answer, *asJSON); err != nil {
		return err
	}
	if len(answer.Subjects) == 0 && answer.NextPageToken == "" {
		return &exitErr{code: exitDeny, err: errSilent}
	}
	return nil
}

// flagError names the flag a refused query's field comes from.
func flagError(err error) error {
	var qerr *pdp.QueryError
	if !errors.As(err, &qerr) {
		return err
	}
	flag := map[string]string{"page_size": "limit", "page_token": "page-token"}[qerr.Field]
	if flag == "" {
		flag = qerr.Field
	}
	return usageError("--%s: %s", flag, qerr.Reason)
}

func printSubjects(sio stdio, q pdp.SubjectQuery, page pdp.SubjectPage, asJSON bool) error {
	if asJSON {
		type subject struct {
			Subject     string `json:"subject"`
			MatchedRole string `json:"matched_role"`
		}
		out := struct {
			Subjects       []subject `json:"subjects"`
			NextPageToken  string    `json:"next_page_token,omitempty"`
			Reason         string    `json:"reason"`
			PolicyRevision string    `json:"policy_revision"`
		}{Subjects: []subject{}, NextPageToken: page.NextPageToken, Reason: page.Reason.String(), PolicyRevision: page.Revision}
		for _, s := range page.Subjects {
			out.Subjects = append(out.Subjects, subject{s.Subject, s.MatchedRole})
		}
		return json.NewEncoder(sio.out).Encode(out)
	}
	tw := tabwriter.NewWriter(sio.out, 0, 0, 2, ' ', 0)
	for _, s := range page.Subjects {
		fmt.Fprintf(tw, "%s\t(%s)\n", s.Subject, s.MatchedRole)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	if page.NextPageToken != "" {
		b.WriteString("this page: ")
	}
	if page.Reason != pdp.Granted {
		fmt.Fprintf(&b, "no subject: %s", page.Reason)
	} else {
		n := len(page.Subjects)
		fmt.Fprintf(&b, "%d %s may %s on %s", n, plural(n, "subject", "subjects"), q.Action, q.Resource)
		if q.Org != "" {
			fmt.Fprintf(&b, " in %s", q.Org)
		}
	}
	fmt.Fprintf(&b, " (policy revision %s)", page.Revision)
	if page.NextPageToken != "" {
		fmt.Fprintf(&b, "; more: --page-token %s (or --all)", page.NextPageToken)
	}
	_, err := fmt.Fprintln(sio.out, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
