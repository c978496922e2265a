package refresh_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
)

// scripted is an upstream whose next answer the test sets.
type scripted struct {
	err   atomic.Pointer[error]
	calls atomic.Int64
}

func (s *scripted) String() string { return "scripted" }

func (s *scripted) Fetch(_ context.Context, etag string) (refresh.Document, error) {
	s.calls.Add(1)
	if p := s.err.Load(); p != nil {
		return refresh.Document{}, *p
	}
	if etag == "v1" {
		return refresh.Document{}, refresh.ErrNotModified
	}
	return refresh.Document{Data: []byte(goodV1), Format: policyfile.YAML, ETag: "v1"}, nil
}

func (s *scripted) fail(err error) { s.err.Store(&err) }
func (s *scripted) heal()          { s.err.Store(nil) }

type clockRig struct {
	up     *scripted
	engine *pdp.Engine
	ref    *refresh.Refresher
	now    atomic.Pointer[time.Time]
}

func newClockRig(t *testing.T, cfg refresh.Config) *clockRig {
	t.Helper()
	r := &clockRig{up: &scripted{}, engine: &pdp.Engine{}}
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	r.now.Store(&t0)
	cfg.Upstream, cfg.Engine = r.up, r.engine
	cfg.Now = func() time.Time { return *r.now.Load() }
	var err error
	if r.ref, err = refresh.New(cfg); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *clockRig) advance(d time.Duration) {
	t := r.now.Load().Add(d)
	r.now.Store(&t)
}

func within(d, want time.Duration, frac float64) bool {
	lo, hi := time.Duration(float64(want)*(1-frac)), time.Duration(float64(want)*(1+frac))
	return d >= lo && d <= hi
}

func TestBackoffDoublesToItsCapWithJitter(t *testing.T) {
	r := newClockRig(t, refresh.Config{Interval: 5 * time.Minute, BackoffBase: time.Second, BackoffMax: 30 * time.Second})
	r.up.fail(errors.New("upstream down"))
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		_ = r.ref.RefreshOnce(t.Context())
		if d := r.ref.NextDelay(); !within(d, want, 0.1) {
			t.Errorf("after %d failures: next delay %v, want %v ±10%%", i+1, d, want)
		}
	}
	r.up.heal()
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	// After a success: the interval, spread by ±10% so that sidecars drift
	// apart.
	seen := map[time.Duration]bool{}
	for range 200 {
		d := r.ref.NextDelay()
		if !within(d, 5*time.Minute, 0.1) {
			t.Fatalf("next delay %v, want 5m ±10%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct delays in 200: no jitter", len(seen))
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	r := newClockRig(t, refresh.Config{Interval: time.Minute, Jitter: -1})
	r.up.fail(&refresh.RetryAfterError{Status: 503, Wait: 10 * time.Minute})
	_ = r.ref.RefreshOnce(t.Context())
	if d := r.ref.NextDelay(); d != 10*time.Minute {
		t.Errorf("next delay %v, want the 10m the upstream asked for", d)
	}
}

func TestMaxStaleKeepsServingByDefault(t *testing.T) {
	r := newClockRig(t, refresh.Config{MaxStale: 10 * time.Minute})
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.up.fail(errors.New("upstream down"))
	r.advance(11 * time.Minute)
	_ = r.ref.RefreshOnce(t.Context())
	st := r.ref.Status()
	if !st.Stale || st.Withheld {
		t.Errorf("status = %+v, want stale and served", st)
	}
	if d, err := r.engine.Decide(pdp.Query{Subject: "alice", Resource: "orders", Action: "read"}); err != nil || !d.Allowed {
		t.Errorf("Decide on a stale policy = %+v, %v; want it served", d, err)
	}
}

func TestMaxStaleFailsClosedWhenAsked(t *testing.T) {
	r := newClockRig(t, refresh.Config{MaxStale: 10 * time.Minute, FailWhenStale: true, Jitter: -1, Interval: 5 * time.Minute})
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.up.fail(errors.New("upstream down"))
	r.advance(9 * time.Minute)
	// The next wake-up is no later than the moment the policy turns stale.
	_ = r.ref.RefreshOnce(t.Context())
	if d := r.ref.NextDelay(); d > time.Minute+time.Millisecond {
		t.Errorf("next delay %v; the policy turns stale in 1m", d)
	}
	r.advance(2 * time.Minute)
	_ = r.ref.RefreshOnce(t.Context())
	if st := r.ref.Status(); !st.Stale || !st.Withheld {
		t.Errorf("status = %+v, want stale and withheld", st)
	}
	if _, err := r.engine.Decide(pdp.Query{Subject: "alice", Resource: "orders", Action: "read"}); !errors.Is(err, pdp.ErrNoPolicy) {
		t.Errorf("Decide on a withheld policy: err = %v, want ErrNoPolicy (UNAVAILABLE)", err)
	}

	// The upstream confirms the policy: it is served again at once.
	r.up.heal()
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := r.ref.Status(); st.Stale || st.Withheld {
		t.Errorf("status after the upstream came back = %+v", st)
	}
	if d, err := r.engine.Decide(pdp.Query{Subject: "alice", Resource: "orders", Action: "read"}); err != nil || !d.Allowed {
		t.Errorf("Decide after recovery = %+v, %v", d, err)
	}
}

// Run retries on the backoff schedule in (fake) time, and concurrent
// refreshes share one fetch.
func TestRunBacksOffInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &scripted{}
		up.fail(errors.New("upstream down"))
		ref, err := refresh.New(refresh.Config{Upstream: up, Engine: &pdp.Engine{}, Interval: time.Hour, Jitter: -1, BackoffBase: time.Second, BackoffMax: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- ref.Run(ctx) }()
		for i, at := range []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
			time.Sleep(at)
			synctest.Wait()
			if got := up.calls.Load(); got != int64(i+1) {
				t.Fatalf("after %v more: %d fetches, want %d", at, got, i+1)
			}
		}
		cancel()
		<-done
	})
}

func TestConcurrentRefreshesShareOneFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		up := &blockingUpstream{release: block}
		ref, err := refresh.New(refresh.Config{Upstream: up, Engine: &pdp.Engine{}})
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 5)
		for range 5 {
			go func() { errs <- ref.RefreshOnce(t.Context()) }()
		}
		synctest.Wait()
		close(block)
		for range 5 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if n := up.calls.Load(); n != 1 {
			t.Errorf("5 concurrent refreshes made %d fetches, want 1", n)
		}
	})
}

type blockingUpstream struct {
	release chan struct{}
	calls   atomic.Int64
}

func (b *blockingUpstream) String() string { return "blocking" }

func (b *blockingUpstream) Fetch(ctx context.Context, _ string) (refresh.Document, error) {
	b.calls.Add(1)
	<-b.release
	return refresh.Document{Data: []byte(goodV1), Format: policyfile.YAML, ETag: "v1"}, nil
}
