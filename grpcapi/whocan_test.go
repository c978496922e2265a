package grpcapi_test

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
)

// startWhoCan serves the bookstore over bufconn to any caller: bufconn is
// not a local peer, so the default (who_can: local) would refuse it.
func startWhoCan(t *testing.T, engine *pdp.Engine) *testServer {
	t.Helper()
	return startOpts(t, decide.New(engine, decide.Options{WhoCan: decide.WhoCanAny}), grpcapi.Options{})
}

// listAll follows the page tokens of req to the end.
func listAll(t *testing.T, ts *testServer, req *rolecallv1.ListSubjectsRequest) ([]string, []*rolecallv1.ListSubjectsResponse) {
	t.Helper()
	var got []string
	var pages []*rolecallv1.ListSubjectsResponse
	for {
		resp, err := ts.api.ListSubjects(t.Context(), req)
		if err != nil {
			t.Fatalf("ListSubjects(%v): %v", req, err)
		}
		pages = append(pages, resp)
		for _, s := range resp.GetSubjects() {
			got = append(got, s.GetSubject()+" "+s.GetMatchedRole())
		}
		if resp.GetNextPageToken() == "" {
			return got, pages
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func TestListSubjectsAnswersTheWhoCanCases(t *testing.T) {
	ts := startWhoCan(t, rctest.Bookstore(t))
	for _, c := range rctest.WhoCanCases(t) {
		for _, size := range []int32{0, 1, 2} {
			t.Run(c.Name, func(t *testing.T) {
				got, pages := listAll(t, ts, &rolecallv1.ListSubjectsRequest{Org: c.Org, Resource: c.Resource, Action: c.Action, PageSize: size})
				if diff := cmp.Diff(c.Subjects, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("page size %d: subjects (-want +got):\n%s", size, diff)
				}
				for _, p := range pages {
					if r := pdp.Reason(p.GetReason()).String(); r != c.WantReason() || p.GetPolicyRevision() != "bookstore-2026-11-20.1" {
						t.Errorf("page size %d: reason %s, revision %q; want %s, bookstore-2026-11-20.1", size, r, p.GetPolicyRevision(), c.WantReason())
					}
					if size > 0 && len(p.GetSubjects()) > int(size) {
						t.Errorf("page size %d: a page of %d subjects", size, len(p.GetSubjects()))
					}
				}
			})
		}
	}
}

func TestListSubjectsPagesWithTokens(t *testing.T) {
	ts := startWhoCan(t, rctest.Bookstore(t))
	req := &rolecallv1.ListSubjectsRequest{Resource: "https://api.store.io/products", Action: "read:product", PageSize: 3}
	first, err := ts.api.ListSubjects(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(first.GetSubjects()); n != 3 || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %d subjects, next token %q; want 3 and a token", n, first.GetNextPageToken())
	}
	req.PageToken = first.GetNextPageToken()
	second, err := ts.api.ListSubjects(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := second.GetSubjects(); len(got) != 1 || got[0].GetSubject() != "svc-catalog-sync" || second.GetNextPageToken() != "" {
		t.Errorf("second page = %v; want svc-catalog-sync alone, the last page", second)
	}
}

func TestListSubjectsRefusals(t *testing.T) {
	ts := startWhoCan(t, rctest.Bookstore(t))
	long := string(make([]byte, pdp.MaxIDLen+1))
	tests := []struct {
		name string
		req  *rolecallv1.ListSubjectsRequest
		msg  string
	}{
		{"no resource", &rolecallv1.ListSubjectsRequest{Action: "read:order"}, "resource: must not be empty"},
		{"no action", &rolecallv1.ListSubjectsRequest{Resource: orders}, "action: must not be empty"},
		{"invalid UTF-8 org", &rolecallv1.ListSubjectsRequest{Org: "acme\xff", Resource: orders, Action: "read:order"}, "org: is not valid UTF-8"},
		{"a long action", &rolecallv1.ListSubjectsRequest{Resource: orders, Action: long}, "action: is 1025 bytes long; the limit is 1024"},
		{"a negative page size", &rolecallv1.ListSubjectsRequest{Resource: orders, Action: "read:order", PageSize: -1}, "page_size: is -1; want 0 (for 100) to 1000"},
		{"a page size over 1000", &rolecallv1.ListSubjectsRequest{Resource: orders, Action: "read:order", PageSize: 1001}, "page_size: is 1001; want 0 (for 100) to 1000"},
		{"a page token that is not one", &rolecallv1.ListSubjectsRequest{Resource: orders, Action: "read:order", PageToken: "not-a-token"},
			`page_token: is not a page token of policy revision "bookstore-2026-11-20.1"; start again without one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.api.ListSubjects(t.Context(), tt.req)
			if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != tt.msg {
				t.Errorf("err = %v, want InvalidArgument %q", err, tt.msg)
			}
		})
	}
}

func TestListSubjectsPageTokenOfAnotherRevision(t *testing.T) {
	engine := rctest.Bookstore(t)
	ts := startWhoCan(t, engine)
	req := &rolecallv1.ListSubjectsRequest{Resource: orders, Action: "read:order", PageSize: 1}
	first, err := ts.api.ListSubjects(t.Context(), req)
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page = %v, %v; want a next page", first, err)
	}
	snap, err := pdp.Compile(&pdp.Policy{Revision: "next", Resources: []pdp.Resource{{ID: orders, Actions: []string{"read:order"}}}})
	if err != nil {
		t.Fatal(err)
	}
	engine.Swap(snap)
	req.PageToken = first.GetNextPageToken()
	if _, err := ts.api.ListSubjects(t.Context(), req); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a token of the previous revision: err = %v, want InvalidArgument", err)
	}
}

func TestListSubjectsWithoutPolicyIsUnavailable(t *testing.T) {
	ts := startWhoCan(t, &pdp.Engine{})
	_, err := ts.api.ListSubjects(t.Context(), &rolecallv1.ListSubjectsRequest{Resource: orders, Action: "read:order"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("err = %v, want Unavailable", err)
	}
}

func TestListSubjectsIsLocalByDefault(t *testing.T) {
	req := &rolecallv1.ListSubjectsRequest{Resource: orders, Action: "read:order"}
	t.Run("bufconn is not local", func(t *testing.T) {
		ts := start(t, rctest.Bookstore(t), nil, "")
		_, err := ts.api.ListSubjects(t.Context(), req)
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("err = %v, want PermissionDenied", err)
		}
		// Check stays open to the same caller.
		if _, err := ts.api.Check(t.Context(), &rolecallv1.CheckRequest{Subject: "alice", Resource: orders, Action: "read:order"}); err != nil {
			t.Errorf("Check: %v", err)
		}
	})
	sock := filepath.Join(t.TempDir(), "rolecall.sock")
	ls, err := grpcapi.Listen("127.0.0.1:0", sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	engine := rctest.Bookstore(t)
	for _, target := range []struct{ name, addr string }{{"loopback", ls[0].Addr().String()}, {"unix", "unix://" + sock}} {
		t.Run(target.name+" is local", func(t *testing.T) {
			lis := ls[0]
			if target.name == "unix" {
				lis = ls[1]
			}
			ts := start(t, engine, lis, target.addr)
			resp, err := ts.api.ListSubjects(t.Context(), req)
			if err != nil || len(resp.GetSubjects()) != 2 {
				t.Errorf("ListSubjects over %s = %v, %v; want alice and carol", target.name, resp, err)
			}
		})
	}
	t.Run("off refuses even local callers", func(t *testing.T) {
		l, err := grpcapi.Listen("127.0.0.1:0", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		ts := startWith(t, decide.New(engine, decide.Options{WhoCan: decide.WhoCanOff}), grpcapi.Options{}, l[0], l[0].Addr().String())
		_, err = ts.api.ListSubjects(t.Context(), req)
		if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "who-can (ListSubjects) is turned off on this server (who_can: off)" {
			t.Errorf("err = %v, want PermissionDenied", err)
		}
	})
}
