package publish_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rolecall/rolecall/publish"
)

// waiters is how many long polls BenchmarkLongPollWaiters holds at once.
const waiters = 5000

// BenchmarkLongPollWaiters holds 5,000 long polls over real loopback
// connections, measures what they cost while idle, then publishes once and
// times until every one has its answer. Run it alone, once:
//
//	go test ./publish -run '^$' -bench LongPollWaiters -benchtime 1x
//
// The clients write their requests and read nothing while waiting, so the
// goroutines counted are the server's; the heap counted includes the
// clients' connection objects.
func BenchmarkLongPollWaiters(b *testing.B) {
	raiseFileLimit(b, 2*waiters+256)
	p := newPublisher(b, publish.Options{})
	first := bookstore(b, "", t0)
	p.Publish(first)
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	request := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: hub\r\nIf-None-Match: %s\r\nPrefer: wait=300\r\n\r\n", publish.Path, digestTag(b, first))
	revision := 0
	for b.Loop() {
		base := sample()
		conns := make([]net.Conn, waiters)
		for i := range conns {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				b.Fatalf("connection %d: %v", i, err)
			}
			if _, err := io.WriteString(c, request); err != nil {
				b.Fatal(err)
			}
			conns[i] = c
		}
		waitUntil(b, fmt.Sprintf("%d long polls wait", waiters), func() bool { return p.Waiting() == waiters })
		held := sample()
		idleFrom, cpuFrom := time.Now(), cpuTime()
		time.Sleep(time.Second) // idle, with every poll held
		idleCPU := (cpuTime() - cpuFrom).Seconds() * 1000 / time.Since(idleFrom).Seconds()

		revision++
		next := bookstore(b, fmt.Sprintf("bookstore-bench-%d", revision), t0.Add(time.Duration(revision)*time.Minute))
		start := time.Now()
		p.Publish(next)
		readAll(b, conns)
		took := time.Since(start)
		for _, c := range conns {
			_ = c.Close()
		}

		b.ReportMetric(float64(held.goroutines-base.goroutines)/waiters, "goroutines/waiter")
		b.ReportMetric(float64(held.heap-base.heap)/waiters, "heap-B/waiter")
		b.ReportMetric(float64(held.stacks-base.stacks)/waiters, "stack-B/waiter")
		b.ReportMetric(idleCPU, "idle-CPU-ms/s")
		b.ReportMetric(float64(took)/float64(time.Millisecond), "ms-to-answer-all")
	}
}

type usage struct {
	goroutines   int
	heap, stacks uint64
}

func sample() usage {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return usage{goroutines: runtime.NumGoroutine(), heap: s[0].Value.Uint64(), stacks: s[1].Value.Uint64()}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readAll reads one 200 answer from every connection, 64 at a time.
func readAll(b *testing.B, conns []net.Conn) {
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	next := make(chan net.Conn)
	for range 64 {
		wg.Go(func() {
			for c := range next {
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for _, c := range conns {
		next <- c
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("a long poll's answer: %v", err)
	}
}

// raiseFileLimit raises the soft limit on open files to at least n, or
// skips when the hard limit is lower.
func raiseFileLimit(b *testing.B, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		b.Skipf("%d long polls need %d open files; the hard limit is %d", waiters, n, lim.Max)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
}
