package pdp_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/policygen"
)

// scales are the policy sizes of the scale benchmarks. The million-subject
// size needs several GB and tens of seconds to set up, so it runs only when
// ROLECALL_BENCH_1M is set (make bench-large).
func scales(b *testing.B) []int {
	s := []int{10_000, 100_000}
	if os.Getenv("ROLECALL_BENCH_1M") != "" {
		s = append(s, 1_000_000)
	}
	return s
}

func genOptions(subjects int) policygen.Options {
	return policygen.Options{Seed: 1, Subjects: subjects, Orgs: max(subjects/100, 10), Roles: 200, MembershipsPerSubject: 2}
}

// BenchmarkDecideAtScale decides a generated workload (random subjects,
// organizations, resources and actions; allows and denies) against generated
// policies: the cost of cache misses over large indexes.
func BenchmarkDecideAtScale(b *testing.B) {
	for _, n := range scales(b) {
		b.Run(fmt.Sprintf("subjects=%d", n), func(b *testing.B) {
			o := genOptions(n)
			snap, err := pdp.Compile(policygen.Generate(o))
			if err != nil {
				b.Fatal(err)
			}
			qs := policygen.Workload(o, 1<<16)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				snap.Decide(qs[i&(len(qs)-1)])
				i++
			}
		})
	}
}

// BenchmarkCompile parses, validates and compiles a generated JSON document:
// what a refresh with a changed policy costs.
func BenchmarkCompile(b *testing.B) {
	for _, n := range scales(b) {
		b.Run(fmt.Sprintf("subjects=%d", n), func(b *testing.B) {
			data, err := policyfile.MarshalJSON(policygen.Generate(genOptions(n)))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := policyfile.Compile(data, policyfile.JSON); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoadSnapshot reads a binary snapshot: what a warm start costs.
func BenchmarkLoadSnapshot(b *testing.B) {
	for _, n := range scales(b) {
		b.Run(fmt.Sprintf("subjects=%d", n), func(b *testing.B) {
			snap, err := pdp.Compile(policygen.Generate(genOptions(n)))
			if err != nil {
				b.Fatal(err)
			}
			data, err := snap.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := pdp.UnmarshalSnapshot(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemoryLatency chases pointers at random through a region the size
// of a large snapshot's index and arena: the cost of one read that misses
// every cache on this machine, which bounds what a decision at a million
// subjects can cost (a lookup reads the index's slot, then the record).
func BenchmarkMemoryLatency(b *testing.B) {
	for _, mb := range []int{1, 16, 96} {
		b.Run(fmt.Sprintf("MB=%d", mb), func(b *testing.B) {
			lines := mb << 20 / 64
			next := make([]uint32, lines*16) // one number a cache line
			perm := rand.Perm(lines)
			for i, l := range perm {
				next[l*16] = uint32(perm[(i+1)%lines] * 16)
			}
			p := uint32(0)
			for b.Loop() {
				p = next[p]
			}
			sink = p
		})
	}
}

var sink uint32

// changed returns a copy of a generated policy with a typical day's
// change: 1% of the subjects gone, 1% new, 2% with other roles, and one
// role granting one action more.
func changed(p *pdp.Policy) *pdp.Policy {
	q := *p
	q.Revision = p.Revision + "-next"
	q.Roles = slices.Clone(p.Roles)
	q.Roles[0].Permissions = append(slices.Clone(q.Roles[0].Permissions), pdp.Grant{Resource: p.Resources[0].ID, Actions: []string{"*"}})
	q.Subjects = nil
	for i, s := range p.Subjects {
		switch {
		case i%100 == 0:
			continue
		case i%50 == 1:
			s.Roles = nil
			s.Memberships = nil
		case i%100 == 2:
			n := s
			n.ID += "-new"
			q.Subjects = append(q.Subjects, n)
		}
		q.Subjects = append(q.Subjects, s)
	}
	return &q
}

// BenchmarkCompare computes the effective change of a refresh: every
// subject's grants in every context, in both snapshots, without a visitor
// (what the refresher does) and with one (what policy diff does).
func BenchmarkCompare(b *testing.B) {
	for _, n := range scales(b) {
		p := policygen.Generate(genOptions(n))
		old, err := pdp.Compile(p)
		if err != nil {
			b.Fatal(err)
		}
		new, err := pdp.Compile(changed(p))
		if err != nil {
			b.Fatal(err)
		}
		for _, visit := range []bool{false, true} {
			b.Run(fmt.Sprintf("subjects=%d/visit=%v", n, visit), func(b *testing.B) {
				b.ReportAllocs()
				var t pdp.Totals
				var f func(*pdp.SubjectChange)
				if visit {
					f = func(*pdp.SubjectChange) {}
				}
				for b.Loop() {
					t = pdp.Compare(old, new).Subjects(f)
				}
				b.ReportMetric(float64(t.GrantsLost), "lost")
				b.ReportMetric(float64(t.SubjectsChanged), "changed")
			})
		}
	}
}

// BenchmarkListSubjects builds the who-can index once, then asks for a
// page of who holds a workload's permissions, in an organization or not.
func BenchmarkListSubjects(b *testing.B) {
	for _, n := range scales(b) {
		o := genOptions(n)
		b.Run(fmt.Sprintf("subjects=%d/index", n), func(b *testing.B) {
			var bytes int
			for b.Loop() {
				b.StopTimer()
				snap, err := pdp.Compile(policygen.Generate(o))
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				bytes = snap.WhoIndexBytes()
			}
			b.ReportMetric(float64(bytes)/(1<<20), "index-MiB")
		})
		snap, err := pdp.Compile(policygen.Generate(o))
		if err != nil {
			b.Fatal(err)
		}
		snap.WhoIndexBytes()
		qs := policygen.Workload(o, 1<<10)
		for _, inOrg := range []bool{false, true} {
			b.Run(fmt.Sprintf("subjects=%d/org=%v", n, inOrg), func(b *testing.B) {
				b.ReportAllocs()
				i, found := 0, 0
				for b.Loop() {
					q := qs[i%len(qs)]
					i++
					if !inOrg {
						q.Org = ""
					} else if q.Org == "" {
						q.Org = "org-000001"
					}
					page, err := snap.ListSubjects(pdp.SubjectQuery{Org: q.Org, Resource: q.Resource, Action: q.Action})
					if err != nil {
						b.Fatal(err)
					}
					found += len(page.Subjects)
				}
				b.ReportMetric(float64(found)/float64(i), "subjects/page")
			})
		}
	}
}
