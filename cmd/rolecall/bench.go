package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/policyfile"
)

func bench(ctx context.Context, args []string, sio stdio) error {
	fs := newFlags("bench", "bench [--addr A | --unix-socket P] (--workload FILE | --policy FILE --generate) [flags]",
		`Load a running server with Check calls, and with grpc.health.v1.Health/Check
calls in the same run, and compare: the health check is the transport's floor,
so the ratio says what the decision itself costs. Prints requests/s, latency
p50/p90/p99/p99.9/max and errors for each, and with --server-pid the server's
CPU time per request, read from /proc. Closed loop by default (each worker
sends its next call when the last is answered); --rps sends at a fixed rate
and measures latency from when each call was due.

The workload is a file of JSON lines {"subject","org","resource","action"}
(see "rolecall policy generate"), or --generate: random checks over the
subjects, organizations, resources and actions of --policy FILE.`,
		`  rolecall bench --duration 10s --concurrency 16 --policy examples/bookstore.yaml --generate
  rolecall bench --unix-socket /run/rolecall/rolecall.sock --workload checks.jsonl --server-pid 1234 --json`,
		sio.err)
	srv := registerServerFlags(fs)
	concurrency := fs.Int("concurrency", 16, "calls in flight")
	connections := fs.Int("connections", 1, "gRPC connections, shared round-robin by the workers")
	duration := fs.Duration("duration", 10*time.Second, "how long each phase runs")
	requests := fs.Int("requests", 0, "stop each phase after this many calls instead (0: by duration)")
	rps := fs.Int("rps", 0, "open loop: calls per second, spread over the workers (0: closed loop)")
	workload := fs.String("workload", "", "workload `file`: JSON lines of checks")
	policyPath := fs.String("policy", "", "the policy `FILE` the server loaded, for --generate")
	generate := fs.Bool("generate", false, "generate random checks from --policy")
	seed := fs.Uint64("seed", 1, "seed of --generate")
	serverPID := fs.Int("server-pid", 0, "the server's `pid`, to read its CPU time from /proc")
	skipHealth := fs.Bool("no-health", false, "skip the health-check phase")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	mode := fs.String("mode", "check", "what to load the server with: check, or validate-token (with --token-file)")
	tokenFile := fs.String("token-file", "", "validate-token mode: a `file` of tokens, one per line, sent again and again (so they are verified-token cache hits)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var problems []string
	if *concurrency < 1 || *connections < 1 || *connections > *concurrency {
		problems = append(problems, "want 1 ≤ --connections ≤ --concurrency")
	}
	if *duration <= 0 && *requests <= 0 {
		problems = append(problems, "set --duration or --requests")
	}
	switch *mode {
	case "check":
		if (*workload == "") == !*generate {
			problems = append(problems, "give --workload FILE or --policy FILE --generate")
		}
		if *generate && *policyPath == "" {
			problems = append(problems, "--generate needs --policy FILE")
		}
	case "validate-token":
		if *tokenFile == "" {
			problems = append(problems, "--mode validate-token needs --token-file")
		}
	default:
		problems = append(problems, fmt.Sprintf("--mode %q: want check or validate-token", *mode))
	}
	if len(problems) > 0 {
		return usageError("%s", strings.Join(problems, "; "))
	}
	var queries []*rolecallv1.CheckRequest
	var tokens []*rolecallv1.ValidateTokenRequest
	var err error
	switch {
	case *mode == "validate-token":
		tokens, err = readTokens(*tokenFile)
	case *generate:
		queries, err = generateChecks(*policyPath, *seed, 10000)
	default:
		queries, err = readWorkload(*workload)
	}
	if err != nil {
		return err
	}

	conns := make([]*grpc.ClientConn, *connections)
	for i := range conns {
		c, _, err := srv.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
	}
	load := loadSpec{concurrency: *concurrency, duration: *duration, requests: *requests, rps: *rps, pid: *serverPID}
	var report benchReport
	if !*skipHealth {
		h := make([]healthpb.HealthClient, len(conns))
		for i, c := range conns {
			h[i] = healthpb.NewHealthClient(c)
		}
		req := &healthpb.HealthCheckRequest{}
		r := runPhase(ctx, "health", load, func(ctx context.Context, worker, _ int) error {
			_, err := h[worker%len(h)].Check(ctx, req)
			return err
		})
		report.Health = &r
	}
	api := make([]rolecallv1.PolicyDecisionServiceClient, len(conns))
	for i, c := range conns {
		api[i] = rolecallv1.NewPolicyDecisionServiceClient(c)
	}
	var allowed atomic.Int64
	call := func(ctx context.Context, worker, i int) error {
		resp, err := api[worker%len(api)].Check(ctx, queries[i%len(queries)])
		if err == nil && resp.GetAllowed() {
			allowed.Add(1)
		}
		return err
	}
	name := "check"
	if *mode == "validate-token" {
		name = "validate-token"
		call = func(ctx context.Context, worker, i int) error {
			resp, err := api[worker%len(api)].ValidateToken(ctx, tokens[i%len(tokens)])
			if err == nil && resp.GetValid() {
				allowed.Add(1)
			}
			return err
		}
	}
	r := runPhase(ctx, name, load, call)
	r.Allowed = allowed.Load()
	report.Check = r
	if report.Health != nil && report.Health.RPS > 0 {
		report.ThroughputRatio = report.Check.RPS / report.Health.RPS
		if report.Health.ServerCPUPerRequestMicros > 0 {
			report.CPURatio = report.Check.ServerCPUPerRequestMicros / report.Health.ServerCPUPerRequestMicros
		}
	}
	report.Concurrency, report.Connections, report.Transport = *concurrency, *connections, "tcp"
	if srv.unixSocket != "" {
		report.Transport = "unix"
	}
	if *asJSON {
		return json.NewEncoder(sio.out).Encode(report)
	}
	return printReport(sio.out, report)
}

type loadSpec struct {
	concurrency int
	duration    time.Duration
	requests    int
	rps         int
	pid         int
}

// phaseResult is one phase's figures. Latencies are in microseconds.
type phaseResult struct {
	Name                      string             `json:"name"`
	Requests                  int64              `json:"requests"`
	Errors                    int64              `json:"errors"`
	Allowed                   int64              `json:"allowed,omitempty"`
	Seconds                   float64            `json:"seconds"`
	RPS                       float64            `json:"requests_per_second"`
	P50, P90, P99, P999, Max  float64            `json:"-"`
	Latency                   map[string]float64 `json:"latency_us"`
	ServerCPUSeconds          float64            `json:"server_cpu_seconds,omitempty"`
	ServerCPUPerRequestMicros float64            `json:"server_cpu_us_per_request,omitempty"`
	FirstError                string             `json:"first_error,omitempty"`
}

type benchReport struct {
	Transport       string       `json:"transport"`
	Concurrency     int          `json:"concurrency"`
	Connections     int          `json:"connections"`
	Health          *phaseResult `json:"health,omitempty"`
	Check           phaseResult  `json:"check"`
	ThroughputRatio float64      `json:"check_to_health_throughput,omitempty"`
	CPURatio        float64      `json:"check_to_health_server_cpu,omitempty"`
}

// runPhase runs call from concurrency workers until the duration or request
// count is reached, recording every latency.
func runPhase(ctx context.Context, name string, l loadSpec, call func(ctx context.Context, worker, i int) error) phaseResult {
	// Calls run on ctx itself: the phase ends between calls, so an
	// in-flight call is never cut off and counted as an error.
	var next, errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, l.concurrency)
	cpuBefore := cpuSeconds(l.pid)
	start := time.Now()
	var interval time.Duration
	if l.rps > 0 {
		interval = time.Duration(float64(time.Second) * float64(l.concurrency) / float64(l.rps))
	}
	end := time.Time{}
	if l.requests <= 0 {
		end = start.Add(l.duration)
	}
	over := func() bool { return ctx.Err() != nil || (!end.IsZero() && time.Now().After(end)) }
	var wg gosync.WaitGroup
	for w := range l.concurrency {
		wg.Go(func() {
			due := start.Add(time.Duration(w) * interval / time.Duration(l.concurrency))
			for !over() {
				i := int(next.Add(1) - 1)
				if l.requests > 0 && i >= l.requests {
					return
				}
				from := time.Now()
				if interval > 0 {
					if wait := time.Until(due); wait > 0 {
						if !end.IsZero() && time.Now().Add(wait).After(end) {
							return
						}
						select {
						case <-ctx.Done():
							return
						case <-time.After(wait):
						}
					}
					from = due // open loop: a late call's wait counts
					due = due.Add(interval)
				}
				err := call(ctx, w, i)
				if err != nil {
					if ctx.Err() != nil {
						return // the caller gave up
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				lat[w] = append(lat[w], time.Since(from))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := phaseResult{Name: name, Errors: errs.Load(), Seconds: elapsed.Seconds()}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r.Requests = int64(len(all))
	r.RPS = float64(r.Requests) / elapsed.Seconds()
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Nanoseconds()) / 1e3
	}
	r.P50, r.P90, r.P99, r.P999 = pct(0.50), pct(0.90), pct(0.99), pct(0.999)
	if len(all) > 0 {
		r.Max = float64(all[len(all)-1].Nanoseconds()) / 1e3
	}
	r.Latency = map[string]float64{"p50": r.P50, "p90": r.P90, "p99": r.P99, "p99.9": r.P999, "max": r.Max}
	if cpuBefore >= 0 {
		if after := cpuSeconds(l.pid); after >= 0 && r.Requests > 0 {
			r.ServerCPUSeconds = after - cpuBefore
			r.ServerCPUPerRequestMicros = r.ServerCPUSeconds / float64(r.Requests) * 1e6
		}
	}
	return r
}

// cpuSeconds reads a process's user and system CPU time from /proc, or -1.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the line, in clock ticks (USER_HZ, 100).
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (utime + stime) / 100
}

func printReport(w io.Writer, r benchReport) error {
	fmt.Fprintf(w, "%s, concurrency %d, %d connection(s)\n", r.Transport, r.Concurrency, r.Connections)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\trequests\terrors\treq/s\tp50 µs\tp90 µs\tp99 µs\tp99.9 µs\tmax µs\tserver CPU µs/req\t")
	row := func(p *phaseResult) {
		cpu := "-"
		if p.ServerCPUPerRequestMicros > 0 {
			cpu = fmt.Sprintf("%.1f", p.ServerCPUPerRequestMicros)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t\n", p.Name, p.Requests, p.Errors, p.RPS, p.P50, p.P90, p.P99, p.P999, p.Max, cpu)
	}
	if r.Health != nil {
		row(r.Health)
	}
	row(&r.Check)
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.ThroughputRatio > 0 {
		fmt.Fprintf(w, "%s/health: throughput %.2f×", r.Check.Name, r.ThroughputRatio)
		if r.CPURatio > 0 {
			fmt.Fprintf(w, ", server CPU per request %.2f×", r.CPURatio)
		}
		fmt.Fprintln(w)
	}
	if r.Check.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.Check.FirstError)
	}
	return nil
}

// readWorkload reads JSON lines of checks.
func readWorkload(path string) ([]*rolecallv1.CheckRequest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*rolecallv1.CheckRequest
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var q struct{ Subject, Org, Resource, Action string }
		if err := json.Unmarshal(sc.Bytes(), &q); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, &rolecallv1.CheckRequest{Subject: q.Subject, Org: q.Org, Resource: q.Resource, Action: q.Action})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New(path + ": no checks")
	}
	return out, nil
}

// generateChecks draws random checks over a policy's ids: allows and denies
// mix, some inside organizations, some by unknown subjects.
func generateChecks(path string, seed uint64, n int) ([]*rolecallv1.CheckRequest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := policyfile.Parse(data, policyfile.DetectFormat(path, data))
	if err != nil {
		return nil, err
	}
	if len(p.Subjects) == 0 || len(p.Resources) == 0 {
		return nil, fmt.Errorf("%s: no subjects or resources to check", path)
	}
	r := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]*rolecallv1.CheckRequest, n)
	for i := range out {
		s := p.Subjects[r.IntN(len(p.Subjects))]
		res := p.Resources[r.IntN(len(p.Resources))]
		q := &rolecallv1.CheckRequest{Subject: s.ID, Resource: res.ID}
		if len(res.Actions) > 0 {
			q.Action = res.Actions[r.IntN(len(res.Actions))]
		} else {
			q.Action = "none"
		}
		if len(s.Memberships) > 0 && r.IntN(2) == 0 {
			orgs := slices.Sorted(maps.Keys(s.Memberships))
			q.Org = orgs[r.IntN(len(orgs))]
		}
		out[i] = q
	}
	return out, nil
}

// readTokens reads tokens, one per line.
func readTokens(path string) ([]*rolecallv1.ValidateTokenRequest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*rolecallv1.ValidateTokenRequest
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, &rolecallv1.ValidateTokenRequest{Token: line})
		}
	}
	if len(out) == 0 {
		return nil, errors.New(path + ": no tokens")
	}
	return out, nil
}
