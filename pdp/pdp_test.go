package pdp_test

import (
	"errors"
	"go/build"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

// Invalid UTF-8 and oversized ids cannot be written in a YAML case file, but
// adapters build policies in code, so they are tested here.
func TestValidateRejectsUnreadableIDs(t *testing.T) {
	long := strings.Repeat("x", pdp.MaxIDLen+1)
	p := &pdp.Policy{
		Resources: []pdp.Resource{{ID: "r\xff", Actions: []string{long}}},
		Roles:     []pdp.Role{{ID: "ok", Type: pdp.RoleUser, Description: "\xfe"}},
		Subjects:  []pdp.Subject{{ID: strings.Repeat("é", 600)}},
	}
	want := []string{
		"resources[0].id: is not valid UTF-8",
		"resources[0].actions[0]: is 1025 bytes long; the limit is 1024",
		"roles[0].description: is not valid UTF-8",
		"subjects[0].id: is 1200 bytes long; the limit is 1024",
	}
	var verr *pdp.ValidationError
	if err := p.Validate(); !errors.As(err, &verr) {
		t.Fatalf("Validate() = %v, want a *pdp.ValidationError", err)
	}
	var got []string
	for _, pr := range verr.Problems {
		got = append(got, pr.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if _, err := pdp.Compile(p); !errors.As(err, &verr) {
		t.Errorf("Compile of an invalid policy = %v, want a *pdp.ValidationError", err)
	}
}

func TestValidationErrorListsEveryProblem(t *testing.T) {
	err := &pdp.ValidationError{Problems: []pdp.Problem{{Path: "a", Message: "x"}, {Path: "b[0]", Message: "y"}}}
	want := "invalid policy: 2 problems:\n  a: x\n  b[0]: y"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestQueryValidate(t *testing.T) {
	long := strings.Repeat("a", pdp.MaxIDLen+1)
	ok := pdp.Query{Subject: "s", Resource: "r", Action: "a"}
	tests := []struct {
		name  string
		edit  func(*pdp.Query)
		field string
		why   string
	}{
		{"a query without org is valid", func(*pdp.Query) {}, "", ""},
		{"empty subject", func(q *pdp.Query) { q.Subject = "" }, "subject", "must not be empty"},
		{"empty resource", func(q *pdp.Query) { q.Resource = "" }, "resource", "must not be empty"},
		{"empty action", func(q *pdp.Query) { q.Action = "" }, "action", "must not be empty"},
		{"subject over 1 KiB", func(q *pdp.Query) { q.Subject = long }, "subject", "is 1025 bytes long; the limit is 1024"},
		{"org over 1 KiB", func(q *pdp.Query) { q.Org = long }, "org", "is 1025 bytes long; the limit is 1024"},
		{"invalid UTF-8 action", func(q *pdp.Query) { q.Action = "read\xc3" }, "action", "is not valid UTF-8"},
		{"invalid UTF-8 org", func(q *pdp.Query) { q.Org = "\xff" }, "org", "is not valid UTF-8"},
		{"exactly 1 KiB is allowed", func(q *pdp.Query) { q.Resource = long[1:] }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := ok
			tt.edit(&q)
			err := q.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var qerr *pdp.QueryError
			if !errors.As(err, &qerr) {
				t.Fatalf("Validate() = %v, want a *pdp.QueryError", err)
			}
			if qerr.Field != tt.field || qerr.Reason != tt.why {
				t.Errorf("Validate() = %q, want %s: %s", err, tt.field, tt.why)
			}
		})
	}
}

func TestEngineFailsClosedWithoutPolicy(t *testing.T) {
	var e pdp.Engine
	d, err := e.Decide(pdp.Query{Subject: "alice", Resource: "r", Action: "a"})
	if !errors.Is(err, pdp.ErrNoPolicy) || d.Allowed {
		t.Errorf("Decide without policy = %+v, %v; want deny and ErrNoPolicy", d, err)
	}
	if _, err := e.ListPermissions("alice", "", ""); !errors.Is(err, pdp.ErrNoPolicy) {
		t.Errorf("ListPermissions without policy: err = %v, want ErrNoPolicy", err)
	}
	// Malformed input is reported as such even without a policy.
	var qerr *pdp.QueryError
	if _, err := e.Decide(pdp.Query{}); !errors.As(err, &qerr) {
		t.Errorf("Decide(empty query) err = %v, want a *pdp.QueryError", err)
	}
}

func TestSwapIsSeenWholeByConcurrentReaders(t *testing.T) {
	a := compileDoc(t, `{revision: a, resources: [{id: r, actions: [x]}], roles: [{id: ra, type: user, permissions: [{resource: r, actions: [x]}]}], subjects: [{id: s, roles: [ra]}]}`)
	b := compileDoc(t, `{revision: b, resources: [{id: r, actions: [x]}], roles: [{id: rb, type: user}], subjects: [{id: s, roles: [rb]}]}`)
	var e pdp.Engine
	e.Swap(a)
	q := pdp.Query{Subject: "s", Resource: "r", Action: "x"}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 1)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, _ := e.Decide(q)
				// Revision a always allows through ra; revision b always denies.
				if (d.Revision == "a") != (d.Allowed && d.MatchedRole == "ra") {
					select {
					case errs <- d.Revision + " answered " + d.Reason.String():
					default:
					}
				}
			}
		})
	}
	for i := range 2000 {
		if i%2 == 0 {
			e.Swap(b)
		} else {
			e.Swap(a)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-errs:
		t.Fatalf("a reader saw a mixed policy: %s", msg)
	default:
	}
}

// Decide is the hot path: it must never allocate, for any outcome: the
// queries cover every reason.
func TestDecideDoesNotAllocate(t *testing.T) {
	snap := bookstore(t)
	var e pdp.Engine
	e.Swap(snap)
	for _, q := range benchQueries {
		if n := testing.AllocsPerRun(100, func() { _, _ = e.Decide(q) }); n != 0 {
			t.Errorf("Decide(%+v) allocates %.0f times per call, want 0", q, n)
		}
	}
}

// pdp is the heart of rolecall and must build with the standard library alone.
func TestImportsStandardLibraryOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("pdp imports %q; it may import only the standard library", imp)
		}
	}
}

var benchQueries = []pdp.Query{
	{Subject: "carol", Resource: "https://api.store.io/products", Action: "write:product"},
	{Subject: "alice", Resource: "https://api.store.io/products", Action: "write:product"},
	{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"},
	{Subject: "grace", Org: "initech", Resource: "document", Action: "update"},
	{Subject: "dave", Org: "initech", Resource: "document", Action: "download"},
	{Subject: "mallory", Resource: "document", Action: "download"},
	{Subject: "alice", Resource: "nowhere", Action: "read"},
	{Subject: "alice", Resource: "document", Action: "fly"},
	{Subject: "dave", Org: "nowhere", Resource: "document", Action: "download"},
}

func BenchmarkDecide(b *testing.B) {
	var e pdp.Engine
	e.Swap(bookstore(b))
	for _, q := range benchQueries[:4] {
		name := q.Subject
		if q.Org != "" {
			name += "@" + q.Org
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Decide(q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func bookstore(tb testing.TB) *pdp.Snapshot {
	tb.Helper()
	data, err := os.ReadFile("../examples/bookstore.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := policyfile.Compile(data, policyfile.YAML)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

func compileDoc(tb testing.TB, doc string) *pdp.Snapshot {
	tb.Helper()
	snap, err := policyfile.Compile([]byte(doc), policyfile.YAML)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

func TestDecideRoles(t *testing.T) {
	snap := bookstore(t)
	tests := []struct {
		name   string
		roles  []string
		res    string
		action string
		want   pdp.Decision
	}{
		{"a carried role grants", []string{"limited_admin"}, "document", "create", pdp.Decision{Allowed: true, Reason: pdp.Granted, MatchedRole: "limited_admin"}},
		{"the first granting role in sorted order is named", []string{"stytch_member", "editor"}, "document", "download", pdp.Decision{Allowed: true, Reason: pdp.Granted, MatchedRole: "editor"}},
		{"unknown roles are ignored", []string{"ghost", "stytch_member"}, "document", "download", pdp.Decision{Allowed: true, Reason: pdp.Granted, MatchedRole: "stytch_member"}},
		{"no carried role grants", []string{"stytch_member"}, "document", "delete", pdp.Decision{Reason: pdp.NoPermission}},
		{"no roles", nil, "document", "delete", pdp.Decision{Reason: pdp.NoPermission}},
		{"unknown resource", []string{"admin"}, "nowhere", "read", pdp.Decision{Reason: pdp.UnknownResource}},
		{"unknown action", []string{"admin"}, "document", "fly", pdp.Decision{Reason: pdp.UnknownAction}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Revision = snap.Revision()
			if diff := cmp.Diff(tt.want, snap.DecideRoles(tt.roles, tt.res, tt.action)); diff != "" {
				t.Errorf("DecideRoles (-want +got):\n%s", diff)
			}
			if n := testing.AllocsPerRun(50, func() { snap.DecideRoles(tt.roles, tt.res, tt.action) }); n != 0 {
				t.Errorf("DecideRoles allocates %.0f times", n)
			}
		})
	}
}
