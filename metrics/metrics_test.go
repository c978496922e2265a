package metrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/metrics"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/token"
	"github.com/rolecall/rolecall/token/devissuer"
)

// upstream answers with the bookstore policy, then 304s, then fails, as the
// test scripts.
type upstream struct{ answers []error }

func (u *upstream) String() string { return "file:/etc/rolecall/bookstore.yaml" }

func (u *upstream) Fetch(_ context.Context, etag string) (refresh.Document, error) {
	err := u.answers[0]
	u.answers = u.answers[1:]
	if err != nil {
		return refresh.Document{}, err
	}
	if etag != "" {
		return refresh.Document{}, refresh.ErrNotModified
	}
	data, rerr := os.ReadFile("../examples/bookstore.yaml")
	return refresh.Document{Data: data, Format: policyfile.YAML, ETag: "e1"}, rerr
}

// A scripted series of syncs, decisions and token validations, and the
// exposition it must produce.
func TestExpositionAfterAScriptedSeries(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }

	engine := &pdp.Engine{}
	ref, err := refresh.New(refresh.Config{Upstream: &upstream{answers: []error{nil, nil, errors.New("upstream down")}}, Engine: engine, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // loaded, not modified, error
		_ = ref.RefreshOnce(t.Context())
	}

	di, err := devissuer.New(devissuer.Options{Algorithm: "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(di.Handler())
	defer jwks.Close()
	di.SetIssuer("https://issuer.example")
	v, err := token.New([]token.IssuerConfig{{Issuer: "https://issuer.example", JWKSURL: jwks.URL + "/jwks", Audiences: []string{"api"}}}, token.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RefreshKeys(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	tok, err := di.Mint(map[string]any{"sub": "alice", "aud": "api"}, devissuer.WithNow(now))
	if err != nil {
		t.Fatal(err)
	}
	v.Validate(t.Context(), tok, token.Request{})                  // valid, a cache miss
	v.Validate(t.Context(), tok, token.Request{})                  // valid, a cache hit
	v.Validate(t.Context(), tok, token.Request{Audience: "other"}) // wrong audience, a hit
	v.Validate(t.Context(), "garbage", token.Request{})            // malformed

	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg, metrics.Sources{
		Policy:      ref.Status,
		Tokens:      v.Stats,
		DecisionLog: func() (uint64, uint64) { return 7, 2 },
		Now:         func() time.Time { return now.Add(90 * time.Second) },
	})
	if err != nil {
		t.Fatal(err)
	}
	// Decisions through a server built with the metrics.
	ts := newInProcess(t, engine, m)
	for _, q := range []*rolecallv1.CheckRequest{
		{Subject: "alice", Resource: "https://api.store.io/orders", Action: "read:order"},
		{Subject: "carol", Resource: "https://api.store.io/orders", Action: "read:order"},
		{Subject: "bob", Resource: "https://api.store.io/orders", Action: "read:order"},
		{Subject: "mallory", Resource: "https://api.store.io/orders", Action: "read:order"},
		{Subject: "dave", Org: "initech", Resource: "document", Action: "download"},
	} {
		if _, err := ts.Check(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}

	const want = `
# HELP rolecall_decisions_total Decisions made, by outcome and reason.
# TYPE rolecall_decisions_total counter
rolecall_decisions_total{allowed="false",reason="NOT_A_MEMBER"} 1
rolecall_decisions_total{allowed="false",reason="NO_PERMISSION"} 1
rolecall_decisions_total{allowed="false",reason="UNKNOWN_ACTION"} 0
rolecall_decisions_total{allowed="false",reason="UNKNOWN_ORGANIZATION"} 0
rolecall_decisions_total{allowed="false",reason="UNKNOWN_RESOURCE"} 0
rolecall_decisions_total{allowed="false",reason="UNKNOWN_SUBJECT"} 1
rolecall_decisions_total{allowed="true",reason="GRANTED"} 2
# HELP rolecall_policy_sync_attempts_total Policy refreshes, by result: loaded (a new policy), not_modified (the upstream confirmed the one held), error.
# TYPE rolecall_policy_sync_attempts_total counter
rolecall_policy_sync_attempts_total{result="error"} 1
rolecall_policy_sync_attempts_total{result="loaded"} 1
rolecall_policy_sync_attempts_total{result="not_modified"} 1
# HELP rolecall_policy_age_seconds Seconds since the last successful refresh.
# TYPE rolecall_policy_age_seconds gauge
rolecall_policy_age_seconds 90
# HELP rolecall_policy_last_success_timestamp_seconds When the upstream last answered with a valid policy or a confirmation (Unix time).
# TYPE rolecall_policy_last_success_timestamp_seconds gauge
rolecall_policy_last_success_timestamp_seconds 1.7952624e+09
# HELP rolecall_policy_info The policy being served (always 1): its revision, source, format (snapshot, json, yaml), publisher and signing key.
# TYPE rolecall_policy_info gauge
rolecall_policy_info{format="yaml",publisher="",revision="bookstore-2026-11-20.1",signing_key="",source="file:/etc/rolecall/bookstore.yaml"} 1
# HELP rolecall_policy_long_polling 1 while the upstream holds fetches open until the policy changes, 0 when it is polled on the interval.
# TYPE rolecall_policy_long_polling gauge
rolecall_policy_long_polling 0
# HELP rolecall_policy_loaded 1 when a policy is loaded and served, 0 when none is or it is withheld.
# TYPE rolecall_policy_loaded gauge
rolecall_policy_loaded 1
# HELP rolecall_policy_stale 1 when the last successful refresh is older than max_stale.
# TYPE rolecall_policy_stale gauge
rolecall_policy_stale 0
# HELP rolecall_policy_sync_consecutive_failures Refreshes that failed in a row.
# TYPE rolecall_policy_sync_consecutive_failures gauge
rolecall_policy_sync_consecutive_failures 1
# HELP rolecall_policy_objects Objects in the policy being served, by kind.
# TYPE rolecall_policy_objects gauge
rolecall_policy_objects{kind="organizations"} 3
rolecall_policy_objects{kind="resources"} 5
rolecall_policy_objects{kind="roles"} 8
rolecall_policy_objects{kind="subjects"} 8
# HELP rolecall_verified_token_cache_hits_total Validations answered from the verified-token cache.
# TYPE rolecall_verified_token_cache_hits_total counter
rolecall_verified_token_cache_hits_total 2
# HELP rolecall_verified_token_cache_misses_total Validations that had to verify a signature.
# TYPE rolecall_verified_token_cache_misses_total counter
rolecall_verified_token_cache_misses_total 2
# HELP rolecall_decision_log_entries_total Decision log entries, by result: written, or dropped because the queue was full.
# TYPE rolecall_decision_log_entries_total counter
rolecall_decision_log_entries_total{result="dropped"} 2
rolecall_decision_log_entries_total{result="written"} 7
`
	names := []string{
		"rolecall_decisions_total", "rolecall_policy_sync_attempts_total", "rolecall_policy_age_seconds",
		"rolecall_policy_last_success_timestamp_seconds", "rolecall_policy_info", "rolecall_policy_long_polling", "rolecall_policy_loaded",
		"rolecall_policy_stale", "rolecall_policy_sync_consecutive_failures", "rolecall_policy_objects",
		"rolecall_verified_token_cache_hits_total", "rolecall_verified_token_cache_misses_total",
		"rolecall_decision_log_entries_total",
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// Token validations by result: two valid, one wrong audience, one malformed.
	for result, n := range map[string]float64{"valid": 2, "WRONG_AUDIENCE": 1, "MALFORMED": 1, "EXPIRED": 0} {
		if got := gatherValue(t, reg, "rolecall_token_validations_total", "result", result); got != n {
			t.Errorf("token validations %s = %v, want %v", result, got, n)
		}
	}
	if got := gatherValue(t, reg, "rolecall_jwks_fetches_total", "result", "success"); got != 1 {
		t.Errorf("key set fetches = %v, want 1", got)
	}
	// Every Check was observed by the latency histogram and by the gRPC
	// middleware.
	if got := histogramCount(t, reg, "rolecall_decision_duration_seconds"); got != 5 {
		t.Errorf("decision latency observations = %d, want 5", got)
	}
	if got := gatherValue(t, reg, "grpc_server_handled_total", "grpc_method", "Check"); got != 5 {
		t.Errorf("grpc_server_handled_total for Check = %v, want 5", got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !hasMetric(t, reg, name) {
			t.Errorf("standard collector metric %s missing", name)
		}
	}

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "rolecall_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestObserveDecisionDoesNotAllocate(t *testing.T) {
	m, err := metrics.New(prometheus.NewRegistry(), metrics.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	d := pdp.Decision{Allowed: true, Reason: pdp.Granted}
	if n := testing.AllocsPerRun(100, func() { m.ObserveDecision(d, 120*time.Nanosecond) }); n != 0 {
		t.Errorf("ObserveDecision allocates %.0f times", n)
	}
}

func TestNewFailsOnADoubleRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg, metrics.Sources{}); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg, metrics.Sources{}); err == nil {
		t.Error("registering rolecall's metrics twice on one registry succeeded")
	}
}

func gatherValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func hasMetric(t *testing.T, g prometheus.Gatherer, name string) bool {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return true
		}
	}
	return false
}

// A policy from a publisher shows where it came from and how long it took.
func TestPublishedPolicyMetrics(t *testing.T) {
	published := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	st := refresh.Status{
		Loaded: true, Revision: "r9", Source: "https://hub:8443/v1/policy", Format: "snapshot",
		PublishedAt: published, Publisher: "hub-1", SigningKey: "ed25519:0011223344556677", Verified: true,
		PropagationDelay: 42 * time.Millisecond, LongPolling: true,
	}
	reg := prometheus.NewPedanticRegistry()
	if _, err := metrics.New(reg, metrics.Sources{Policy: func() refresh.Status { return st }, Now: time.Now}); err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP rolecall_policy_info The policy being served (always 1): its revision, source, format (snapshot, json, yaml), publisher and signing key.
# TYPE rolecall_policy_info gauge
rolecall_policy_info{format="snapshot",publisher="hub-1",revision="r9",signing_key="ed25519:0011223344556677",source="https://hub:8443/v1/policy"} 1
# HELP rolecall_policy_long_polling 1 while the upstream holds fetches open until the policy changes, 0 when it is polled on the interval.
# TYPE rolecall_policy_long_polling gauge
rolecall_policy_long_polling 1
# HELP rolecall_policy_propagation_delay_seconds Seconds from the publisher publishing the served policy to this process serving it.
# TYPE rolecall_policy_propagation_delay_seconds gauge
rolecall_policy_propagation_delay_seconds 0.042
# HELP rolecall_policy_published_timestamp_seconds When the served policy was first published by a rolecall publisher (Unix time); absent for a policy not from a publisher.
# TYPE rolecall_policy_published_timestamp_seconds gauge
rolecall_policy_published_timestamp_seconds 1.7962056e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "rolecall_policy_info", "rolecall_policy_long_polling",
		"rolecall_policy_propagation_delay_seconds", "rolecall_policy_published_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}
