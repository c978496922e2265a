package policygen_test

import (
	"bytes"
	"testing"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/policygen"
)

func TestGenerateIsDeterministicAndValid(t *testing.T) {
	o := policygen.Options{Seed: 7, Subjects: 2000, Orgs: 50, Roles: 30, MembershipsPerSubject: 2}
	a, err := policyfile.MarshalJSON(policygen.Generate(o))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := policyfile.MarshalJSON(policygen.Generate(o))
	if !bytes.Equal(a, b) {
		t.Fatal("the same options and seed gave two different policies")
	}
	o.Seed = 8
	c, _ := policyfile.MarshalJSON(policygen.Generate(o))
	if bytes.Equal(a, c) {
		t.Error("another seed gave the same policy")
	}
	snap, err := policyfile.Compile(a, policyfile.JSON)
	if err != nil {
		t.Fatalf("the generated policy is invalid: %v", err)
	}
	if got := snap.Counts(); got != (pdp.Counts{Resources: 20, Roles: 30, Organizations: 50, Subjects: 2000}) {
		t.Errorf("counts = %+v", got)
	}

	// The workload mixes allows and denies, with and without organizations.
	var e pdp.Engine
	e.Swap(snap)
	o.Seed = 7
	allows, orgs := 0, 0
	qs := policygen.Workload(o, 2000)
	for _, q := range qs {
		d, err := e.Decide(q)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allows++
		}
		if q.Org != "" {
			orgs++
		}
	}
	if allows < 50 || allows > 1950 || orgs < 200 {
		t.Errorf("%d allows and %d organization checks in 2000: not a mix", allows, orgs)
	}
	again := policygen.Workload(o, 2000)
	for i := range qs {
		if qs[i] != again[i] {
			t.Fatal("the workload is not deterministic")
		}
	}
}
