package metrics_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/metrics"
	"github.com/rolecall/rolecall/pdp"
)

// newInProcess serves the engine over bufconn with the metrics installed.
func newInProcess(t *testing.T, engine *pdp.Engine, m *metrics.Metrics) rolecallv1.PolicyDecisionServiceClient {
	t.Helper()
	l := bufconn.Listen(1 << 20)
	srv := grpcapi.New(decide.New(engine, decide.Options{Recorder: decide.NewRecorder(m, nil)}), grpcapi.Options{Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		<-done
	})
	return rolecallv1.NewPolicyDecisionServiceClient(conn)
}
