package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/cache"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
)

// child is "rolecall serve" running as its own process, so that the test
// can send it real signals.
type child struct {
	cmd  *exec.Cmd
	sock string
	db   string
	logs *syncBuffer
	done chan error
	conn *grpc.ClientConn
}

// startChild builds rolecall and runs "rolecall serve" on the bookstore
// policy, and waits until it is ready.
func startChild(t *testing.T, extra ...string) *child {
	t.Helper()
	dir := t.TempDir()
	c := spawnServe(t, buildRolecall(t), dir, append([]string{"--policy", bookstore}, extra...)...)
	if err := c.waitServing(15 * time.Second); err != nil {
		t.Fatalf("the child did not become ready: %v\n%s", err, c.logs)
	}
	return c
}

// buildRolecall builds the binary once for a test.
func buildRolecall(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rolecall")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// spawnServe starts bin as "rolecall serve" on a Unix socket in dir, with its
// cache at dir/rolecall.db and no TCP listeners, plus args; it does not wait
// for the child to be ready. The child is killed when the test ends.
func spawnServe(t testing.TB, bin, dir string, args ...string) *child {
	t.Helper()
	c := &child{sock: filepath.Join(dir, "rolecall.sock"), db: filepath.Join(dir, "rolecall.db"), logs: &syncBuffer{}, done: make(chan error, 1)}
	args = append([]string{"serve", "--grpc-addr", "", "--admin-addr", "", "--authz-addr", "",
		"--unix-socket", c.sock, "--cache", c.db}, args...)
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	var err error
	// The socket of a previous, killed process may still be there: retry
	// the connection quickly rather than after gRPC's default second.
	c.conn, err = grpc.NewClient("unix://"+c.sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, Jitter: 0.2, MaxDelay: 100 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.conn.Close() })
	return c
}

// waitServing waits, for at most limit, until the child reports SERVING.
func (c *child) waitServing(limit time.Duration) error {
	h := healthpb.NewHealthClient(c.conn)
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case err := <-c.done:
			c.done <- err
			return fmt.Errorf("the child exited (%v) before it was SERVING", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not SERVING within %v: health %v, error %v", limit, resp.GetStatus(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits, for at most limit, for the child to exit.
func (c *child) wait(t testing.TB, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		return err
	case <-time.After(limit):
		t.Fatalf("the child did not exit within %v\n%s", limit, c.logs)
		return nil
	}
}

// SIGTERM while 50 Checks are in flight: each completes or gets UNAVAILABLE,
// none gets a transport error; the socket file is gone and the bbolt file
// reopens cleanly.
func TestSIGTERMDrainsInFlightChecks(t *testing.T) {
	c := startChild(t)
	api := rolecallv1.NewPolicyDecisionServiceClient(c.conn)
	req := &rolecallv1.CheckRequest{Subject: "alice", Resource: "https://api.store.io/orders", Action: "read:order"}

	var ok, unavailable atomic.Int64
	var started gosync.WaitGroup
	errs := make(chan error, 50)
	var wg gosync.WaitGroup
	for range 50 {
		started.Add(1)
		wg.Go(func() {
			first := true
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				resp, err := api.Check(t.Context(), req)
				if first {
					started.Done()
					first = false
				}
				switch {
				case err == nil && resp.GetAllowed():
					ok.Add(1)
				case status.Code(err) == codes.Unavailable:
					unavailable.Add(1)
					return
				default:
					errs <- errors.Join(errors.New("a Check during shutdown got neither an answer nor UNAVAILABLE"), err)
					return
				}
			}
			errs <- errors.New("the Check loop outlived the server")
		})
	}
	started.Wait()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 20*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, c.logs)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ok.Load() < 50 || unavailable.Load() != 50 {
		t.Errorf("%d answers and %d UNAVAILABLE; want at least 50 answers and every loop ended by UNAVAILABLE", ok.Load(), unavailable.Load())
	}
	if _, err := os.Stat(c.sock); !os.IsNotExist(err) {
		t.Errorf("the socket file is still there: %v", err)
	}
	db, err := cache.Open(c.db, cache.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("the cache does not reopen: %v", err)
	}
	defer db.Close()
	if rec, found, err := db.LoadPolicy(); err != nil || !found || rec.Revision != "bookstore-2026-11-20.1" || db.MovedAside() != "" {
		t.Errorf("the cache after shutdown: %q, %v, %v, moved aside %q", rec.Revision, found, err, db.MovedAside())
	}
}

// A second signal ends a draining process at once.
func TestSecondSignalForcesExit(t *testing.T) {
	c := startChild(t, "--grace-period", "60s")
	// A health watch is a call that never ends by itself: it holds the
	// graceful drain open for the whole grace period.
	watch, err := healthpb.NewHealthClient(c.conn).Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, %v", resp, err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Health turns NOT_SERVING at once, while in-flight calls drain.
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after SIGTERM the watch saw %v, %v; want NOT_SERVING", resp, err)
	}
	select {
	case err := <-c.done:
		t.Fatalf("the child exited (%v) while a call was in flight and the grace period is 60 s", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = c.wait(t, 5*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() {
		t.Errorf("after the second SIGTERM: %v; want the process ended by the signal", err)
	}
}
