package grpcapi_test

import (
	"context"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
)

// TestOverloadStaysBoundedAndRecovers drives a loopback server far past what
// it can answer: many connections, each with more callers than its stream
// limit, sending single checks and full batches as fast as they can. The
// server must keep answering correctly, refuse oversized messages, hold no
// memory or goroutines once the load stops, and answer the next call at once.
//
// The load lasts 2 s; ROLECALL_OVERLOAD=30s runs the long version:
//
//	ROLECALL_OVERLOAD=30s go test -run TestOverloadStaysBoundedAndRecovers -v ./server
func TestOverloadStaysBoundedAndRecovers(t *testing.T) {
	duration := 2 * time.Second
	if s := os.Getenv("ROLECALL_OVERLOAD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("ROLECALL_OVERLOAD=%q: %v", s, err)
		}
		duration = d
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const maxMsg = 128 << 10
	ts := startWith(t, decide.New(rctest.Bookstore(t), decide.Options{}), grpcapi.Options{GracePeriod: time.Second, MaxRecvMsgBytes: maxMsg, MaxConcurrentStreams: 8}, lis, lis.Addr().String())

	// Oversized requests are refused, not buffered.
	_, err = ts.api.Check(t.Context(), &rolecallv1.CheckRequest{Subject: strings.Repeat("x", maxMsg+1), Resource: orders, Action: "read:order"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized Check: err = %v, want ResourceExhausted", err)
	}

	batch := make([]*rolecallv1.CheckRequest, grpcapi.MaxBatch)
	for i := range batch {
		batch[i] = &rolecallv1.CheckRequest{Subject: "alice", Resource: orders, Action: "read:order"}
	}
	batch[len(batch)-1] = &rolecallv1.CheckRequest{Subject: "bob", Resource: orders, Action: "delete:order"}

	settle := func() (heap uint64, goroutines int) {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, runtime.NumGoroutine()
	}
	heap0, g0 := settle()

	const conns, callersPerConn = 4, 64 // 8× the stream limit on every connection
	ctx, cancel := context.WithTimeout(t.Context(), duration)
	defer cancel()
	var calls, wrong atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	var clients []*grpc.ClientConn
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for range conns {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, conn)
		api := rolecallv1.NewPolicyDecisionServiceClient(conn)
		for c := range callersPerConn {
			wg.Go(func() {
				for ctx.Err() == nil {
					var ok bool
					var err error
					if c%8 == 0 {
						var r *rolecallv1.CheckBatchResponse
						r, err = api.CheckBatch(ctx, &rolecallv1.CheckBatchRequest{Checks: batch})
						res := r.GetResults()
						ok = len(res) == len(batch) && res[0].GetAllowed() && !res[len(res)-1].GetAllowed()
					} else {
						var r *rolecallv1.CheckResponse
						r, err = api.Check(ctx, &rolecallv1.CheckRequest{Subject: "carol", Resource: orders, Action: "delete:order"})
						ok = r.GetAllowed()
					}
					if ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded {
						return // the load ended during the call
					}
					calls.Add(1)
					if err != nil || !ok {
						wrong.Add(1)
						firstErr.CompareAndSwap(nil, &err)
					}
				}
			})
		}
	}
	// Sample the heap while the load runs.
	var peak uint64
	tick := time.NewTicker(100 * time.Millisecond)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}
	tick.Stop()
	wg.Wait()
	t.Logf("%d calls by %d callers in %v; heap %d KiB before, peak %d KiB", calls.Load(), conns*callersPerConn, duration, heap0>>10, peak>>10)
	if calls.Load() == 0 {
		t.Fatal("no call finished under load")
	}
	// In flight at once: at most conns × stream limit calls on the server,
	// each under maxMsg, plus the callers' own requests and answers.
	if peak > 256<<20 {
		t.Errorf("heap peaked at %d MiB under load: the server is buffering what it cannot answer", peak>>20)
	}
	if n := wrong.Load(); n > 0 {
		t.Errorf("%d of %d calls failed or answered wrongly under load; first error: %v", n, calls.Load(), *firstErr.Load())
	}

	// Recovers at once: the next call on the original connection answers.
	rctx, rcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer rcancel()
	got, err := ts.api.Check(rctx, &rolecallv1.CheckRequest{Subject: "bob", Resource: orders, Action: "delete:order"})
	if err != nil || got.GetAllowed() {
		t.Fatalf("Check after the load = %v, %v; want a deny", got, err)
	}

	// Nothing is held once the load stops and its clients hang up: heap and
	// goroutines come back to where they started.
	for _, c := range clients {
		_ = c.Close()
	}
	const slack = 4 << 20
	var heap uint64
	var g int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		heap, g = settle()
		if (heap <= heap0+slack && g <= g0+2) || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("after the load: heap %d KiB, %d goroutines (before: %d)", heap>>10, g, g0)
	if heap > heap0+slack {
		t.Errorf("heap is %d KiB after the load, %d KiB before: the load left memory behind", heap>>10, heap0>>10)
	}
	if g > g0+2 {
		t.Errorf("%d goroutines after the load, %d before: the load left goroutines behind", g, g0)
	}
}
