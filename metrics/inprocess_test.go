package metrics_test

import (
	"testing"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/metrics"
	"github.com/rolecall/rolecall/pdp"
)

// newInProcess serves the engine over bufconn with the metrics installed.
func newInProcess(t *testing.T, engine *pdp.Engine, m *metrics.Metrics) rolecallv1.PolicyDecisionServiceClient {
	t.Helper()
	_, conn := rctest.Bufconn(t, decide.New(engine, decide.Options{Recorder: decide.NewRecorder(m, nil)}), grpcapi.Options{Metrics: m})
	return rolecallv1.NewPolicyDecisionServiceClient(conn)
}
