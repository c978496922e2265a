package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
)

// A fleet on one machine: one hub publishing from a file upstream, many
// sidecars reading from it with long polling, each a real rolecall process.
type fleet struct {
	bin, dir, policy    string
	publish, hubAdmin   string
	hub                 *child
	sidecars            []*child
	sidecarDirs         []string
	sidecarArgs         []string
	hubRequests, hubOut float64 // counters at the last settle
}

// fleetPolicy is revision n of a small policy: u<n> may read docs, no other
// u<k> may.
func fleetPolicy(n int) string {
	return fmt.Sprintf(`revision: fleet-%d
resources: [{id: docs, actions: [read, write]}]
roles: [{id: reader, type: user, permissions: [{resource: docs, actions: [read]}]}]
subjects: [{id: alice, roles: [reader]}, {id: u%d, roles: [reader]}]
`, n, n)
}

func startFleet(t testing.TB, sidecars int) *fleet {
	t.Helper()
	f := &fleet{bin: buildRolecall(t), dir: t.TempDir()}
	f.policy = filepath.Join(f.dir, "policy.yaml")
	if err := os.WriteFile(f.policy, []byte(fleetPolicy(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.publish, f.hubAdmin = freeAddr(t), freeAddr(t)
	f.startHub(t)
	if err := f.hub.waitServing(15 * time.Second); err != nil {
		t.Fatalf("the hub is not serving: %v\n%s", err, f.hub.logs)
	}
	// A sidecar polls on a one-hour interval: only long polling can bring
	// it a change within the test.
	f.sidecarArgs = []string{"--upstream", "http://" + f.publish + "/v1/policy", "--refresh-interval", "1h", "--log-format", "json"}
	for i := range sidecars {
		d := filepath.Join(f.dir, fmt.Sprintf("sidecar-%02d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		f.sidecarDirs = append(f.sidecarDirs, d)
		f.sidecars = append(f.sidecars, spawnServe(t, f.bin, d, f.sidecarArgs...))
	}
	var g errgroup.Group
	for _, c := range f.sidecars {
		g.Go(func() error { return c.waitServing(30 * time.Second) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("a sidecar did not become ready: %v", err)
	}
	return f
}

func (f *fleet) startHub(t testing.TB) {
	t.Helper()
	hubDir := filepath.Join(f.dir, "hub")
	_ = os.MkdirAll(hubDir, 0o755)
	f.hub = spawnServe(t, f.bin, hubDir, "--policy", f.policy, "--refresh-interval", "100ms",
		"--publish-addr", f.publish, "--admin-addr", f.hubAdmin, "--log-format", "json")
}

// restartSidecar kills sidecar i and starts it again on the same cache.
func (f *fleet) restartSidecar(t testing.TB, i int) {
	t.Helper()
	f.sidecars[i].sigkill(t)
	f.sidecars[i] = spawnServe(t, f.bin, f.sidecarDirs[i], f.sidecarArgs...)
}

// hubMetric sums the hub's samples of a metric family.
func (f *fleet) hubMetric(t testing.TB, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + f.hubAdmin + "/metrics")
	if err != nil {
		t.Fatalf("hub metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// settle waits until every sidecar holds a long poll open at the hub, and
// records the hub's counters.
func (f *fleet) settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for f.hubMetric(t, "rolecall_publish_waiting") < float64(len(f.sidecars)) {
		if time.Now().After(deadline) {
			t.Fatalf("only %v of %d sidecars wait at the hub", f.hubMetric(t, "rolecall_publish_waiting"), len(f.sidecars))
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.hubRequests = f.hubMetric(t, "rolecall_publish_requests_total")
	f.hubOut = f.hubMetric(t, "rolecall_publish_sent_bytes_total")
}

// loaded is a process's "policy loaded" log line.
type loaded struct {
	Time     time.Time `json:"time"`
	Msg      string    `json:"msg"`
	Revision string    `json:"revision"`
	// Delay is the propagation delay a sidecar measured: from the hub
	// publishing the revision (the bundle's published_at) to serving it.
	Delay time.Duration `json:"propagation_delay"`
}

// loadedLine finds the line a process logged when it loaded revision.
func loadedLine(logs, revision string) (loaded, bool) {
	for line := range strings.Lines(logs) {
		var e loaded
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "policy loaded" && e.Revision == revision {
			return e, true
		}
	}
	return loaded{}, false
}

// round is one policy change through the fleet.
type round struct {
	written, published time.Time
	served             []time.Duration // per sidecar, from the hub's publishing
	requests, bytes    float64         // at the hub, for the change
}

// change writes revision n to the hub's file and waits until every sidecar
// serves it, then until every sidecar waits again.
func (f *fleet) change(t testing.TB, n int) round {
	t.Helper()
	rev := fmt.Sprintf("fleet-%d", n)
	r := round{written: time.Now()}
	if err := os.WriteFile(f.policy, []byte(fleetPolicy(n)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		hub, ok := loadedLine(f.hub.logs.String(), rev)
		if ok {
			r.published = hub.Time
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub did not load %s:\n%s", rev, f.hub.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, c := range f.sidecars {
		for {
			side, ok := loadedLine(c.logs.String(), rev)
			if ok {
				if side.Delay <= 0 {
					t.Fatalf("sidecar %d logged no propagation delay for %s: %s", i, rev, c.logs)
				}
				r.served = append(r.served, side.Delay)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sidecar %d does not serve %s 30 s after the hub loaded it:\n%s", i, rev, c.logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	before, out := f.hubRequests, f.hubOut
	f.settle(t)
	r.requests, r.bytes = f.hubRequests-before, f.hubOut-out
	return r
}

// verify checks that every sidecar decides by revision n.
func (f *fleet) verify(t testing.TB, n int) {
	t.Helper()
	for i, c := range f.sidecars {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := rolecallv1.NewPolicyDecisionServiceClient(c.conn).CheckBatch(ctx, &rolecallv1.CheckBatchRequest{Checks: []*rolecallv1.CheckRequest{
			{Subject: fmt.Sprintf("u%d", n), Resource: "docs", Action: "read"},
			{Subject: fmt.Sprintf("u%d", n-1), Resource: "docs", Action: "read"},
		}})
		cancel()
		if err != nil {
			t.Fatalf("sidecar %d: %v", i, err)
		}
		res := resp.GetResults()
		if !res[0].GetAllowed() || res[1].GetAllowed() || res[0].GetPolicyRevision() != fmt.Sprintf("fleet-%d", n) {
			t.Fatalf("sidecar %d decides by %q: u%d %v, u%d %v; want fleet-%d", i, res[0].GetPolicyRevision(), n, res[0].GetAllowed(), n-1, res[1].GetAllowed(), n)
		}
	}
}

func (r round) summary() string {
	d := slices.Clone(r.served)
	slices.Sort(d)
	pct := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return fmt.Sprintf("%d sidecars: hub publishes → sidecar serves p50 %v, p99 %v, max %v; file write → last sidecar %v; hub requests %v (%.1f per sidecar), %.0f bytes per sidecar",
		len(d), pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond),
		r.published.Add(d[len(d)-1]).Sub(r.written).Round(time.Millisecond), r.requests, r.requests/float64(len(d)), r.bytes/float64(len(d)))
}

const fleetSidecars = 50

// One hub, fifty sidecars: a change reaches every sidecar through long
// polling (their interval is an hour), costing the hub about one request
// per sidecar; with the hub killed the sidecars keep serving, a restarted
// sidecar serves from its cache, and all recover when the hub returns.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 51 rolecall processes")
	}
	f := startFleet(t, fleetSidecars)
	f.verify(t, 1)
	f.settle(t)
	for n := 2; n <= 3; n++ {
		r := f.change(t, n)
		f.verify(t, n)
		t.Logf("change %d: %s", n, r.summary())
		// Each sidecar's waiting request is answered once with the change and
		// asks again: one answered request per sidecar, not a poll storm.
		if r.requests < fleetSidecars || r.requests > 2*fleetSidecars {
			t.Errorf("the hub answered %v requests for one change to %d sidecars, want about one each", r.requests, fleetSidecars)
		}
	}
	for i, c := range f.sidecars[:3] {
		st, err := c.crashStatus()
		if err != nil || !st.GetLongPolling() || st.GetFormat() != "snapshot" || st.GetPublishedAt() == nil || st.GetPropagationDelay() == nil {
			t.Fatalf("sidecar %d status %v (%v): want long polling a snapshot with its publish time and delay", i, st, err)
		}
	}

	// The hub dies: every sidecar keeps serving revision 3.
	f.hub.sigkill(t)
	f.verify(t, 3)
	// A sidecar restarted while the hub is down serves from its cache.
	f.restartSidecar(t, 0)
	if err := f.sidecars[0].waitServing(15 * time.Second); err != nil {
		t.Fatalf("a sidecar restarted while the hub is down does not serve: %v\n%s", err, f.sidecars[0].logs)
	}
	if st, err := f.sidecars[0].crashStatus(); err != nil || !st.GetFromCache() || st.GetRevision() != "fleet-3" {
		t.Fatalf("restarted sidecar: %v (%v); want fleet-3 from the cache", st, err)
	}
	f.verify(t, 3)

	// The hub returns and the fleet follows it again.
	f.startHub(t)
	if err := f.hub.waitServing(15 * time.Second); err != nil {
		t.Fatalf("the hub did not restart: %v\n%s", err, f.hub.logs)
	}
	f.settle(t)
	r := f.change(t, 4)
	f.verify(t, 4)
	t.Logf("after the hub's restart: %s", r.summary())
}

// BenchmarkFleet measures one policy change through a hub and 50 sidecars:
// the time from the hub's install to each sidecar serving it (p50, p99,
// max), and what the hub sent for it.
func BenchmarkFleet(b *testing.B) {
	f := startFleet(b, fleetSidecars)
	f.settle(b)
	var all []time.Duration
	var requests, bytes float64
	n := 1
	for b.Loop() {
		n++
		r := f.change(b, n)
		all = append(all, r.served...)
		requests += r.requests
		bytes += r.bytes
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	changes := float64(n - 1)
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(requests/changes, "hub-requests/change")
	b.ReportMetric(bytes/changes/fleetSidecars, "bytes/sidecar/change")
}
