package pdp_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policygen"
)

// sameAnswers checks that two snapshots decide every query alike.
func sameAnswers(t *testing.T, a, b *pdp.Snapshot, qs []pdp.Query) {
	t.Helper()
	for _, q := range qs {
		if da, db := a.Decide(q), b.Decide(q); da != db {
			t.Fatalf("%+v: %+v before, %+v after the round trip", q, da, db)
		}
		if pa, pb := a.ListPermissions(q.Subject, q.Org, ""), b.ListPermissions(q.Subject, q.Org, ""); !cmp.Equal(pa, pb) {
			t.Fatalf("%+v: permissions differ:\n%s", q, cmp.Diff(pa, pb))
		}
	}
	if a.Revision() != b.Revision() || a.Counts() != b.Counts() {
		t.Errorf("revision or counts differ: %s %v, %s %v", a.Revision(), a.Counts(), b.Revision(), b.Counts())
	}
}

// The same policy compiles to the same bytes, every time and in every
// process: a bundle's digest names its content, so publishers of one policy
// agree on it (and their ETags).
func TestBinaryIsDeterministic(t *testing.T) {
	p := policygen.Generate(policygen.Options{Seed: 5, Subjects: 500, Orgs: 20, Roles: 20, MembershipsPerSubject: 4})
	var first []byte
	for i := range 20 {
		snap, err := pdp.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := snap.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = data
		} else if !bytes.Equal(data, first) {
			t.Fatalf("compile %d wrote other bytes than the first", i)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	snap := bookstore(t)
	data, err := snap.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := pdp.UnmarshalSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	var qs []pdp.Query
	for _, sub := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "svc-catalog-sync", "mallory"} {
		for _, org := range []string{"", "acme", "globex", "initech", "umbrella"} {
			for _, ra := range [][2]string{{"https://api.store.io/orders", "read:order"}, {"https://api.store.io/products", "write:product"}, {"organization", "invite:member"}, {"document", "download"}, {"document", "create"}, {"document", "update"}, {"stytch.organization", "update.info.name"}} {
				qs = append(qs, pdp.Query{Subject: sub, Org: org, Resource: ra[0], Action: ra[1]})
			}
		}
	}
	sameAnswers(t, snap, back, qs)
	if n := testing.AllocsPerRun(50, func() { back.Decide(qs[3]) }); n != 0 {
		t.Errorf("Decide on a loaded snapshot allocates %.0f times", n)
	}

	o := policygen.Options{Seed: 3, Subjects: 5000, Orgs: 100, Roles: 40, MembershipsPerSubject: 2}
	gen, err := pdp.Compile(policygen.Generate(o))
	if err != nil {
		t.Fatal(err)
	}
	data, err = gen.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err = pdp.UnmarshalSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, gen, back, policygen.Workload(o, 5000))
}

// A damaged blob is refused or, when the damage happens to read as another
// valid snapshot, answers without panicking: never a crash.
func TestBinaryDamage(t *testing.T) {
	data, err := bookstore(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(data) {
		if _, err := pdp.UnmarshalSnapshot(data[:n]); !errors.Is(err, pdp.ErrBadSnapshot) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrBadSnapshot", n, err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	q := pdp.Query{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"}
	for range 3000 {
		bad := append([]byte(nil), data...)
		for range 1 + r.IntN(4) {
			bad[8+r.IntN(len(bad)-8)] ^= byte(1 + r.IntN(255))
		}
		if snap, err := pdp.UnmarshalSnapshot(bad); err == nil {
			snap.Decide(q)
			snap.ListPermissions("dave", "acme", "")
		}
	}
	if _, err := pdp.UnmarshalSnapshot([]byte("RCSNAP\x00\x02rest")); !errors.Is(err, pdp.ErrBadSnapshot) {
		t.Errorf("another version: %v", err)
	}
}

func FuzzUnmarshalSnapshot(f *testing.F) {
	data, err := bookstore(f).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		snap, err := pdp.UnmarshalSnapshot(b)
		if err != nil {
			return
		}
		snap.Decide(pdp.Query{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"})
		snap.ListPermissions("dave", "acme", "")
		snap.DecideRoles([]string{"admin"}, "document", "create")
	})
}

// The binary form fits the buffer MarshalBinary sizes for it, so that
// marshalling a large policy does not grow a buffer of tens of megabytes.
func TestMarshalBinaryFitsItsBuffer(t *testing.T) {
	for _, n := range []int{0, 5, 3000} {
		snap, err := pdp.Compile(policygen.Generate(policygen.Options{Seed: 9, Subjects: n, Orgs: 7, Roles: 12, MembershipsPerSubject: 3}))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := snap.MarshalBinary()
		if cap(data) > 2*len(data)+4096 || len(data) > cap(data) {
			t.Errorf("%d subjects: %d bytes in a buffer of %d", n, len(data), cap(data))
		}
		if allocs := testing.AllocsPerRun(3, func() { _, _ = snap.MarshalBinary() }); allocs > 1 {
			t.Errorf("%d subjects: MarshalBinary allocates %.0f times; want once", n, allocs)
		}
	}
}
