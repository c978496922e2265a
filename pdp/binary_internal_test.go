package pdp

import (
	"bytes"
	"fmt"
	"testing"
)

// A snapshot reads the same through the cursors of its pools, as
// MarshalBinary lays them out, and pool by pool, as any other layout is
// read.
func TestReadSubjectsBothWays(t *testing.T) {
	p := &Policy{
		Revision:  "both-ways",
		Resources: []Resource{{ID: "r", Actions: []string{"a", "b"}}},
		Roles: []Role{
			{ID: "g", Type: RoleUser, Permissions: []Grant{{Resource: "r", Actions: []string{"a"}}}},
			{ID: "m", Type: RoleOrganization, Permissions: []Grant{{Resource: "r", Actions: []string{"b"}}}},
			{ID: "n", Type: RoleOrganization, Permissions: []Grant{{Resource: "r", Actions: []string{"*"}}}},
		},
		Organizations: []Organization{{ID: "o1", ImplicitRoles: []ImplicitRule{{SSOGroup: "eng", Roles: []string{"m"}}}}, {ID: "o2"}},
	}
	for i := range 40 {
		s := Subject{ID: fmt.Sprintf("s%02d", i), Email: fmt.Sprintf("x@d%d.io", i%3)}
		if i%2 == 0 {
			s.Roles = []string{"g"}
		}
		if i%3 == 0 {
			s.SSOGroups = []string{"eng", "ops"}
		}
		if i%4 != 0 {
			s.Memberships = map[string][]string{"o1": {"n", "m"}, "o2": {}}
		}
		p.Subjects = append(p.Subjects, s)
	}
	snap, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := snap.MarshalBinary()
	inOrder, err := UnmarshalSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	readInOrder = false
	t.Cleanup(func() { readInOrder = true })
	byPools, err := UnmarshalSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := inOrder.MarshalBinary()
	b, _ := byPools.MarshalBinary()
	if !bytes.Equal(a, data) || !bytes.Equal(b, data) {
		t.Fatal("a snapshot read back does not write the same bytes")
	}
	for _, sub := range p.Subjects {
		for _, org := range []string{"", "o1", "o2"} {
			for _, act := range []string{"a", "b"} {
				q := Query{Subject: sub.ID, Org: org, Resource: "r", Action: act}
				if x, y, z := snap.Decide(q), inOrder.Decide(q), byPools.Decide(q); x != y || x != z {
					t.Fatalf("%+v: compiled %+v, read in order %+v, read by pools %+v", q, x, y, z)
				}
			}
		}
	}
}
