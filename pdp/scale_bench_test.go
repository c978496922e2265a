package pdp_test

import (
	"fmt"
	"math/rand/v2"
	"os"
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
