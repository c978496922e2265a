package decide_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
)

// entry is one recorded decision.
type entry struct {
	Kind, RequestID string
	Query           pdp.Query
	Allowed         bool
}

type recorder struct{ got []entry }

func (r *recorder) Record(kind, requestID string, q pdp.Query, d pdp.Decision, start time.Time) {
	if start.IsZero() {
		panic("a recorded decision has no start time")
	}
	r.got = append(r.got, entry{kind, requestID, q, d.Allowed})
}

var dave = pdp.Query{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"}

func TestEveryDecisionIsRecordedWithItsKindAndRequestID(t *testing.T) {
	rec := &recorder{}
	dec := decide.New(rctest.Bookstore(t), decide.Options{Recorder: rec})
	if _, err := dec.Check(t.Context(), dave, "req-1"); err != nil {
		t.Fatal(err)
	}
	bob := pdp.Query{Subject: "bob", Resource: rctest.Orders, Action: "read:order"}
	if _, err := dec.Batch(t.Context(), []pdp.Query{dave, bob}, "req-2"); err != nil {
		t.Fatal(err)
	}
	want := []entry{
		{"check", "req-1", dave, true},
		{"check_batch", "req-2", dave, true},
		{"check_batch", "req-2", bob, false},
	}
	if diff := cmp.Diff(want, rec.got); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
}

func TestBatchRefusals(t *testing.T) {
	dec := decide.New(rctest.Bookstore(t), decide.Options{})
	bad := dave
	bad.Action = ""
	for _, tt := range []struct {
		name string
		qs   []pdp.Query
		want string
	}{
		{"an empty batch", nil, "checks: must hold at least one check"},
		{"one check over the limit", make([]pdp.Query, decide.MaxBatch+1), "checks: holds 1001 checks; the limit is 1000"},
		{"an invalid check, by index", []pdp.Query{dave, dave, bad}, "checks[2].action: must not be empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dec.Batch(t.Context(), tt.qs, "")
			var aerr *decide.ArgumentError
			if !errors.As(err, &aerr) || err.Error() != tt.want {
				t.Errorf("Batch: %v, want the ArgumentError %q", err, tt.want)
			}
		})
	}
	if _, err := decide.New(&pdp.Engine{}, decide.Options{}).Batch(t.Context(), []pdp.Query{dave}, ""); !errors.Is(err, pdp.ErrNoPolicy) {
		t.Errorf("Batch without a policy: %v, want ErrNoPolicy", err)
	}
}

func TestCheckTokenWithoutIssuers(t *testing.T) {
	dec := decide.New(rctest.Bookstore(t), decide.Options{})
	if _, err := dec.CheckToken(t.Context(), decide.TokenRequest{Token: "x"}); !errors.Is(err, decide.ErrNoIssuers) {
		t.Errorf("CheckToken: %v, want ErrNoIssuers", err)
	}
	var aerr *decide.ArgumentError
	if _, err := dec.CheckToken(t.Context(), decide.TokenRequest{}); !errors.As(err, &aerr) {
		t.Errorf("CheckToken of no token: %v, want an ArgumentError", err)
	}
}

// An unobserved check allocates nothing: the clock is not even read.
func TestCheckAllocatesNothing(t *testing.T) {
	dec := decide.New(rctest.Bookstore(t), decide.Options{})
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		if d, err := dec.Check(ctx, dave, ""); err != nil || !d.Allowed {
			t.Fatal(d, err)
		}
	}); n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
}

func BenchmarkCheck(b *testing.B) {
	dec := decide.New(rctest.Bookstore(b), decide.Options{})
	b.ReportAllocs()
	for b.Loop() {
		if d, err := dec.Check(b.Context(), dave, ""); err != nil || !d.Allowed {
			b.Fatal(d, err)
		}
	}
}

func TestListSubjectsAnswersTheWhoCanCases(t *testing.T) {
	dec := decide.New(rctest.Bookstore(t), decide.Options{})
	for _, c := range rctest.WhoCanCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			// A page of one subject at a time, followed to the end.
			got := []pdp.AllowedSubject{}
			q := c.Query(1)
			for {
				page, err := dec.ListSubjects(t.Context(), q, true)
				if err != nil {
					t.Fatal(err)
				}
				if page.Reason.String() != c.WantReason() {
					t.Errorf("reason = %v, want %s", page.Reason, c.WantReason())
				}
				got = append(got, page.Subjects...)
				if page.NextPageToken == "" {
					break
				}
				q.PageToken = page.NextPageToken
			}
			if diff := cmp.Diff(c.Want(), got); diff != "" {
				t.Errorf("subjects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListSubjectsAdmitsCallersAsWhoCanSays(t *testing.T) {
	q := pdp.SubjectQuery{Resource: rctest.Orders, Action: "read:order"}
	tests := []struct {
		whoCan decide.WhoCan
		local  bool
		ok     bool
	}{
		{decide.WhoCanLocal, true, true},
		{decide.WhoCanLocal, false, false},
		{decide.WhoCanAny, true, true},
		{decide.WhoCanAny, false, true},
		{decide.WhoCanOff, true, false},
		{decide.WhoCanOff, false, false},
	}
	for _, tt := range tests {
		dec := decide.New(rctest.Bookstore(t), decide.Options{WhoCan: tt.whoCan})
		_, err := dec.ListSubjects(t.Context(), q, tt.local)
		var refused *decide.RefusedError
		if got := err == nil; got != tt.ok || (err != nil && !errors.As(err, &refused)) {
			t.Errorf("who_can %v, local %v: err = %v, want answered %v (or a RefusedError)", tt.whoCan, tt.local, err, tt.ok)
		}
	}
}

func TestParseWhoCan(t *testing.T) {
	for i, name := range decide.WhoCanModes {
		w, err := decide.ParseWhoCan(name)
		if err != nil || w != decide.WhoCan(i) || w.String() != name {
			t.Errorf("ParseWhoCan(%q) = %v, %v", name, w, err)
		}
	}
	if _, err := decide.ParseWhoCan("everyone"); err == nil {
		t.Error(`ParseWhoCan("everyone") succeeded`)
	}
}

func TestListSubjectsWithoutPolicyIsErrNoPolicy(t *testing.T) {
	dec := decide.New(&pdp.Engine{}, decide.Options{})
	if _, err := dec.ListSubjects(t.Context(), pdp.SubjectQuery{Resource: "r", Action: "a"}, true); !errors.Is(err, pdp.ErrNoPolicy) {
		t.Errorf("err = %v, want ErrNoPolicy", err)
	}
}
