package grpcapi

import (
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/metrics"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

// BenchmarkCheckWithMetrics is Check's handler with decisions counted and
// timed: what the metrics add to BenchmarkServiceCheck.
func BenchmarkCheckWithMetrics(b *testing.B) {
	data, err := os.ReadFile("../examples/bookstore.yaml")
	if err != nil {
		b.Fatal(err)
	}
	snap, err := policyfile.Compile(data, policyfile.YAML)
	if err != nil {
		b.Fatal(err)
	}
	engine := &pdp.Engine{}
	engine.Swap(snap)
	m, err := metrics.New(prometheus.NewRegistry(), metrics.Sources{})
	if err != nil {
		b.Fatal(err)
	}
	svc := NewService(decide.New(engine, decide.Options{Recorder: decide.NewRecorder(m, nil)}), nil, nil)
	req := &rolecallv1.CheckRequest{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"}
	b.ReportAllocs()
	for b.Loop() {
		if resp, err := svc.Check(b.Context(), req); err != nil || !resp.GetAllowed() {
			b.Fatal(resp, err)
		}
	}
}
