package decisionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// deadline bounds every wait in these tests.
const deadline = 10 * time.Second

// startRun runs l.Run in a goroutine and returns a function that cancels it
// and waits for it to return.
func startRun(t *testing.T, l *Logger) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			t.Helper()
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(deadline):
				t.Fatalf("Run did not return within %v of cancel", deadline)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// runToEnd runs l.Run with a context already cancelled: it writes what is
// queued and returns.
func runToEnd(t *testing.T, l *Logger) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// parseLines checks that out is JSON lines and decodes each into a map, so
// that the exact set of fields can be compared.
func parseLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	if out == "" {
		return nil
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end with a newline: %q", out)
	}
	var got []map[string]any
	for i, ln := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !json.Valid([]byte(ln)) {
			t.Fatalf("line %d is not valid JSON: %q", i+1, ln)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		got = append(got, m)
	}
	return got
}

func newLogger(t *testing.T, opts Options) *Logger {
	t.Helper()
	l, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

func TestLinesInOrder(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(t, Options{Writer: &buf, QueueSize: 2000})
	stop := startRun(t, l)

	base := time.Date(2026, 11, 21, 12, 0, 0, 123456000, time.UTC)
	var want []map[string]any
	// Two fixed entries covering every field and the omitted ones, then
	// many more logged while Run drains concurrently.
	l.Log(Entry{
		Time: base.In(time.FixedZone("CET", 3600)), Kind: KindCheck,
		Subject: "alice", Org: "acme", Resource: "https://api.store.io/orders", Action: "read:order",
		Allowed: true, Reason: "GRANTED", MatchedRole: "order_admin", Revision: "r42",
		Latency: 1234 * time.Nanosecond, RequestID: "req-1",
	})
	want = append(want, map[string]any{
		"time": "2026-11-21T12:00:00.123456Z", "kind": "check",
		"subject": "alice", "org": "acme", "resource": "https://api.store.io/orders", "action": "read:order",
		"allowed": true, "reason": "GRANTED", "matched_role": "order_admin", "revision": "r42",
		"latency_ns": float64(1234), "request_id": "req-1",
	})
	l.Log(Entry{
		Time: base.Add(time.Second), Kind: KindValidateToken,
		Subject: "m2m-app", Resource: "document", Action: "download",
		Reason: "NO_PERMISSION", Revision: "",
	})
	want = append(want, map[string]any{
		"time": "2026-11-21T12:00:01.123456Z", "kind": "validate_token",
		"subject": "m2m-app", "resource": "document", "action": "download",
		"allowed": false, "reason": "NO_PERMISSION", "revision": "",
		"latency_ns": float64(0),
	})
	for i := range 1000 {
		l.Log(Entry{
			Time: base.Add(time.Duration(i) * time.Millisecond), Kind: KindCheckBatch,
			Subject: fmt.Sprintf("user-%d", i), Resource: "r", Action: "a",
			Reason: "NOT_A_MEMBER", Revision: "r42", Latency: time.Duration(i),
		})
		want = append(want, map[string]any{
			"time":    base.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
			"kind":    "check_batch",
			"subject": fmt.Sprintf("user-%d", i), "resource": "r", "action": "a",
			"allowed": false, "reason": "NOT_A_MEMBER", "revision": "r42",
			"latency_ns": float64(i),
		})
	}
	stop()

	if diff := cmp.Diff(want, parseLines(t, buf.String())); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if got, want := l.Written(), uint64(len(want)); got != want {
		t.Errorf("Written() = %d, want %d", got, want)
	}
	if l.Dropped() != 0 || l.Failed() != 0 {
		t.Errorf("Dropped() = %d, Failed() = %d, want 0, 0", l.Dropped(), l.Failed())
	}
}

func TestZeroTimeIsSetByLog(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(t, Options{Writer: &buf})
	before := time.Now()
	l.Log(Entry{Kind: KindCheck, Subject: "s", Resource: "r", Action: "a", Reason: "UNKNOWN_SUBJECT"})
	after := time.Now()
	runToEnd(t, l)
	lines := parseLines(t, buf.String())
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1", len(lines))
	}
	ts, err := time.Parse(time.RFC3339Nano, lines[0]["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if ts.Before(before.Truncate(0)) || ts.After(after) {
		t.Errorf("time %v is not between %v and %v", ts, before, after)
	}
}

// blockingWriter blocks every Write until release is closed, and reports
// each call on entered.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.release
	return w.buf.Write(p)
}

func TestStuckWriterDoesNotSlowLog(t *testing.T) {
	const queue, n = 10, 10000
	w := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	var onDrop atomic.Uint64
	l := newLogger(t, Options{Writer: w, QueueSize: queue, OnDrop: func() { onDrop.Add(1) }})
	stop := startRun(t, l)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(w.release) }) }
	t.Cleanup(release) // runs before stop when the test fails early

	// Get Run stuck in Write with one entry in flight.
	l.Log(Entry{Subject: "first", Reason: "NO_PERMISSION"})
	select {
	case <-w.entered:
	case <-time.After(deadline):
		t.Fatalf("Run did not call Write within %v", deadline)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			l.Log(Entry{Subject: fmt.Sprint(i), Reason: "NO_PERMISSION"})
		}
	}()
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatalf("%d calls to Log did not finish within %v while the writer was stuck", n, deadline)
	}

	// Run is blocked in Write, so exactly the queue's worth was kept.
	if got, want := l.Dropped(), uint64(n-queue); got != want {
		t.Errorf("Dropped() = %d, want %d", got, want)
	}
	if got, want := onDrop.Load(), l.Dropped(); got != want {
		t.Errorf("OnDrop called %d times, want %d", got, want)
	}
	if got := l.Written(); got != 0 {
		t.Errorf("Written() = %d while the writer is stuck, want 0", got)
	}

	release()
	stop()

	lines := parseLines(t, w.buf.String())
	var subjects []string
	for _, m := range lines {
		subjects = append(subjects, m["subject"].(string))
	}
	wantSubjects := []string{"first", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	if diff := cmp.Diff(wantSubjects, subjects); diff != "" {
		t.Errorf("subjects written (-want +got):\n%s", diff)
	}
	if got, want := l.Written(), uint64(1+queue); got != want {
		t.Errorf("Written() = %d, want %d", got, want)
	}
}

func TestSampling(t *testing.T) {
	const each = 1000
	for _, tc := range []struct {
		name               string
		rate               *float64
		minAllow, maxAllow int
	}{
		{"nil", nil, each, each},
		{"0", new(0.0), 0, 0},
		{"1", new(1.0), each, each},
		// Binomial(1000, 0.5): the standard deviation is about 16, so
		// ±200 is more than 12 of them.
		{"0.5", new(0.5), 300, 700},
		// Binomial(1000, 0.01): mean 10, standard deviation about 3.
		{"0.01", new(0.01), 0, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := newLogger(t, Options{Writer: &buf, QueueSize: 2 * each, AllowSampleRate: tc.rate})
			for range each {
				l.Log(Entry{Allowed: true, Reason: "GRANTED"})
				l.Log(Entry{Allowed: false, Reason: "NO_PERMISSION"})
			}
			runToEnd(t, l)

			allows, denies := 0, 0
			for _, m := range parseLines(t, buf.String()) {
				if m["allowed"].(bool) {
					allows++
				} else {
					denies++
				}
			}
			if denies != each {
				t.Errorf("%d denies logged, want all %d", denies, each)
			}
			if allows < tc.minAllow || allows > tc.maxAllow {
				t.Errorf("%d allows logged, want %d..%d", allows, tc.minAllow, tc.maxAllow)
			}
			if got, want := l.Written(), uint64(allows+denies); got != want {
				t.Errorf("Written() = %d, want %d", got, want)
			}
			if l.Dropped() != 0 {
				t.Errorf("Dropped() = %d, want 0 (sampled-out allows are not drops)", l.Dropped())
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(t, Options{Writer: &buf})
	cases := []struct{ in, want string }{
		{`say "hi"`, `say "hi"`},
		{"two\nlines\r\n", "two\nlines\r\n"},
		{"tab\there\x00nul\x1fus\x7f", "tab\there\x00nul\x1fus\x7f"},
		{`back\slash`, `back\slash`},
		// encoding/json replaces each invalid byte on its own.
		{"bad utf-8: \xff\xfe end", "bad utf-8: \uFFFD\uFFFD end"},
		{"truncated \xe2\x82", "truncated \uFFFD\uFFFD"},
		{"<script>&amp;</script>", "<script>&amp;</script>"},
		{"line\u2028separator\u2029", "line\u2028separator\u2029"},
		{"ok: café 日本 🎉", "ok: café 日本 🎉"},
	}
	for _, c := range cases {
		l.Log(Entry{Subject: c.in, Org: c.in, Resource: c.in, Action: c.in, RequestID: c.in, Reason: "NO_PERMISSION"})
	}
	runToEnd(t, l)

	lines := parseLines(t, buf.String())
	if len(lines) != len(cases) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(cases), buf.String())
	}
	for i, c := range cases {
		for _, field := range []string{"subject", "org", "resource", "action", "request_id"} {
			if got := lines[i][field]; got != c.want {
				t.Errorf("%q: %s = %q, want %q", c.in, field, got, c.want)
			}
		}
	}
}

// failingWriter fails every Write, or only the first fails calls when
// fails > 0, writing part of the batch when partial is set. Each call is
// reported on calls.
type failingWriter struct {
	fails   int // 0: always fail
	partial bool
	n       int
	calls   chan struct{}
	buf     bytes.Buffer
}

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	w.n++
	defer func() { w.calls <- struct{}{} }()
	if w.fails == 0 || w.n <= w.fails {
		if w.partial {
			return w.buf.Write(p[:len(p)/2])
		}
		return 0, errDiskFull
	}
	return w.buf.Write(p)
}

func TestWriteErrorKeepsDraining(t *testing.T) {
	const n = 5
	w := &failingWriter{calls: make(chan struct{}, n)}
	var errs []error
	l := newLogger(t, Options{Writer: w, OnWriteError: func(err error) { errs = append(errs, err) }})
	stop := startRun(t, l)
	// One entry at a time, waiting for its write: every entry gets
	// exactly one attempt, and Run goes on after each failure.
	for i := range n {
		l.Log(Entry{Subject: fmt.Sprint(i), Reason: "NO_PERMISSION"})
		select {
		case <-w.calls:
		case <-time.After(deadline):
			t.Fatalf("entry %d: Run did not call Write within %v", i, deadline)
		}
	}
	stop()

	// Run is blocked on the queue, not retrying: no further Write call.
	if w.n != n {
		t.Errorf("Write called %d times, want %d", w.n, n)
	}
	if len(errs) != n {
		t.Errorf("OnWriteError called %d times, want %d", len(errs), n)
	}
	for _, err := range errs {
		if !errors.Is(err, errDiskFull) {
			t.Errorf("OnWriteError(%v), want %v", err, errDiskFull)
		}
	}
	if l.Failed() != n || l.Written() != 0 {
		t.Errorf("Failed() = %d, Written() = %d, want %d, 0", l.Failed(), l.Written(), n)
	}
}

func TestTornWriteIsTerminated(t *testing.T) {
	// The first Write writes half a line and fails; the second succeeds.
	w := &failingWriter{fails: 1, partial: true, calls: make(chan struct{}, 2)}
	var errs []error
	l := newLogger(t, Options{Writer: w, OnWriteError: func(err error) { errs = append(errs, err) }})
	stop := startRun(t, l)
	for _, s := range []string{"lost", "kept"} {
		l.Log(Entry{Subject: s, Reason: "NO_PERMISSION"})
		select {
		case <-w.calls:
		case <-time.After(deadline):
			t.Fatalf("%s: Run did not call Write within %v", s, deadline)
		}
	}
	stop()

	if len(errs) != 1 || !errors.Is(errs[0], io.ErrShortWrite) {
		t.Errorf("OnWriteError calls: %v, want one io.ErrShortWrite", errs)
	}
	out := strings.Split(w.buf.String(), "\n")
	// The torn half line, then the kept line, then the final newline.
	if len(out) != 3 || out[2] != "" {
		t.Fatalf("output %q, want a torn line and a whole line", w.buf.String())
	}
	if strings.Contains(out[0], "kept") || json.Valid([]byte(out[0])) {
		t.Errorf("first line %q, want half of the lost entry", out[0])
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out[1]), &m); err != nil || m["subject"] != "kept" {
		t.Errorf("second line %q (%v), want the kept entry", out[1], err)
	}
	if l.Failed() != 1 || l.Written() != 1 {
		t.Errorf("Failed() = %d, Written() = %d, want 1, 1", l.Failed(), l.Written())
	}
}

func TestRunDrainsOnlyWhatIsQueued(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(t, Options{Writer: &buf, QueueSize: 3})
	for i := range 5 {
		l.Log(Entry{Subject: fmt.Sprint(i), Reason: "NO_PERMISSION"})
	}
	runToEnd(t, l)
	if got := len(parseLines(t, buf.String())); got != 3 {
		t.Errorf("%d lines written, want the 3 queued", got)
	}
	if l.Written() != 3 || l.Dropped() != 2 {
		t.Errorf("Written() = %d, Dropped() = %d, want 3, 2", l.Written(), l.Dropped())
	}
	// Entries logged after Run returned wait in the queue; they are not
	// written and Log still does not block.
	for range 10 {
		l.Log(Entry{Reason: "NO_PERMISSION"})
	}
	if l.Dropped() != 2+7 {
		t.Errorf("Dropped() = %d after Run returned, want 9", l.Dropped())
	}
}

func TestRunOnlyOnce(t *testing.T) {
	l := newLogger(t, Options{Writer: io.Discard})
	runToEnd(t, l)
	// Even after the first Run returned.
	if err := l.Run(context.Background()); !errors.Is(err, errRunning) {
		t.Errorf("second Run: %v, want %v", err, errRunning)
	}
}

func TestNilLogger(t *testing.T) {
	var l *Logger
	l.Log(Entry{Reason: "NO_PERMISSION"})
	if l.Dropped() != 0 || l.Written() != 0 || l.Failed() != 0 {
		t.Error("nil Logger counted something")
	}
	if err := l.Run(context.Background()); err != nil {
		t.Errorf("Run on a nil Logger: %v", err)
	}
	if got := unsafe.Sizeof(Entry{}); got > 190 {
		t.Errorf("Entry is %d bytes; update the Options.QueueSize documentation", got)
	}
}

func TestNew(t *testing.T) {
	l, err := New(Options{Writer: io.Discard})
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	if cap(l.queue) != DefaultQueueSize || !l.allowAll {
		t.Errorf("defaults: queue %d, allowAll %v; want %d, true", cap(l.queue), l.allowAll, DefaultQueueSize)
	}

	for _, rate := range []float64{0, 0.25, 1} {
		if _, err := New(Options{Writer: io.Discard, AllowSampleRate: &rate}); err != nil {
			t.Errorf("AllowSampleRate %v: %v", rate, err)
		}
	}

	_, err = New(Options{QueueSize: -1, AllowSampleRate: new(1.5)})
	if err == nil {
		t.Fatal("New accepted a nil writer, a negative queue size and a rate of 1.5")
	}
	for _, want := range []string{"Options.Writer is required", "Options.QueueSize is -1", "Options.AllowSampleRate is 1.5"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	for _, rate := range []float64{-0.1, 1.0000001, nan()} {
		if _, err := New(Options{Writer: io.Discard, AllowSampleRate: &rate}); err == nil {
			t.Errorf("New accepted AllowSampleRate %v", rate)
		}
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

func TestLogDoesNotAllocate(t *testing.T) {
	l := newLogger(t, Options{Writer: io.Discard, QueueSize: 1000, AllowSampleRate: new(0.5)})
	e := Entry{Kind: KindCheck, Subject: "alice", Resource: "r", Action: "a", Allowed: true, Reason: "GRANTED", Revision: "r1"}
	// Without Run the queue fills after 1000 entries and the rest are
	// dropped; neither path may allocate.
	if got := testing.AllocsPerRun(3000, func() { l.Log(e) }); got != 0 {
		t.Errorf("Log allocates %v times per call, want 0", got)
	}
}

func benchEntry() Entry {
	return Entry{
		Time: time.Now(), Kind: KindCheck,
		Subject: "alice", Org: "acme", Resource: "https://api.store.io/orders", Action: "read:order",
		Allowed: true, Reason: "GRANTED", MatchedRole: "order_admin", Revision: "r42",
		Latency: 100 * time.Nanosecond, RequestID: "req-1",
	}
}

// drainingLogger returns a Logger whose Run drains into io.Discard, and a
// finish that stops the timer, stops Run and reports the drop share.
func drainingLogger(b *testing.B) (*Logger, func()) {
	l, err := New(Options{Writer: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	return l, func() {
		b.StopTimer()
		cancel()
		<-done
		b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
	}
}

// BenchmarkLog measures Log with Run draining into io.Discard. Log is much
// faster than encoding, so most entries are dropped once the queue is full;
// the drop share is reported.
func BenchmarkLog(b *testing.B) {
	l, finish := drainingLogger(b)
	e := benchEntry()
	b.ReportAllocs()
	for b.Loop() {
		l.Log(e)
	}
	finish()
}

// BenchmarkLogParallel is BenchmarkLog from GOMAXPROCS goroutines, as
// concurrent Check calls would log.
func BenchmarkLogParallel(b *testing.B) {
	l, finish := drainingLogger(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := benchEntry()
		for pb.Next() {
			l.Log(e)
		}
	})
	finish()
}

// BenchmarkLogSampledOut is the cost of an allow left out by sampling.
func BenchmarkLogSampledOut(b *testing.B) {
	l, err := New(Options{Writer: io.Discard, AllowSampleRate: new(0.0)})
	if err != nil {
		b.Fatal(err)
	}
	e := benchEntry()
	b.ReportAllocs()
	for b.Loop() {
		l.Log(e)
	}
}

// BenchmarkLogEnqueue is the cost of Log when the queue has room: each Log
// is followed by a receive that makes room again, in the same goroutine.
func BenchmarkLogEnqueue(b *testing.B) {
	l, err := New(Options{Writer: io.Discard, QueueSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	e := benchEntry()
	b.ReportAllocs()
	for b.Loop() {
		l.Log(e)
		<-l.queue
	}
	if l.Dropped() != 0 {
		b.Fatalf("Dropped() = %d, want 0", l.Dropped())
	}
}

// BenchmarkEncode is Run's cost per entry: encoding and batched writing
// into io.Discard. Its inverse is the rate above which entries are dropped.
func BenchmarkEncode(b *testing.B) {
	l, err := New(Options{Writer: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	bt := newBatch(l)
	e := benchEntry()
	b.ReportAllocs()
	for b.Loop() {
		bt.add(e)
		if bt.buf.Len() >= maxBatch {
			bt.flush()
		}
	}
	bt.flush()
}
