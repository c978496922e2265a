package metrics_test

import (
	"context"
	"errors"
	"fmt"
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
# HELP rolecall_policy_sync_attempts_total Policy refreshes, by result: loaded (a new policy), not_modified (the upstream confirmed the one served), held (a policy held back by max_revoke_ratio, or still held), error.
# TYPE rolecall_policy_sync_attempts_total counter
rolecall_policy_sync_attempts_total{result="error"} 1
rolecall_policy_sync_attempts_total{result="held"} 0
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

// series serves its documents in turn: next moves to the following one.
type series struct {
	docs []string
	i    int
}

func (u *series) String() string { return "test:series" }
func (u *series) next()          { u.i++ }

func (u *series) Fetch(_ context.Context, etag string) (refresh.Document, error) {
	data := []byte(u.docs[u.i])
	if tag := refresh.ContentTag(data); tag != etag {
		return refresh.Document{Data: data, Format: policyfile.YAML, ETag: tag}, nil
	}
	return refresh.Document{}, refresh.ErrNotModified
}

// members is a policy in which each subject of ids holds one grant; "-"
// before an id gives it none.
func members(rev string, ids ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "revision: %s\nresources: [{id: orders, actions: [read]}]\nroles: [{id: reader, type: user, permissions: [{resource: orders, actions: [read]}]}]\nsubjects:\n", rev)
	for _, id := range ids {
		if rest, ok := strings.CutPrefix(id, "-"); ok {
			fmt.Fprintf(&b, "  - {id: %s}\n", rest)
			continue
		}
		fmt.Fprintf(&b, "  - {id: %s, roles: [reader]}\n", id)
	}
	return b.String()
}

// The change counters add every install up, the warm start's excepted, and
// a held policy shows in the gauge and is counted once.
func TestPolicyChangeCountersAddUp(t *testing.T) {
	as := func(n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("a%d", i)
		}
		return ids
	}
	up := &series{docs: []string{
		members("v1", as(10)...),                          // the first: no change
		members("v2", append(as(8), "b0")...),             // a8, a9 lost; b0 gained
		members("v3", append(as(5), "b0", "b1", "b2")...), // a5 … a7 lost, 3 of 9; b1, b2 gained
		members("v4", "b0"),                               // 7 of 8 lost: held
		members("v4", "b0", "-c"),                         // the same, and c added: held in its place
	}}
	ref, err := refresh.New(refresh.Config{Upstream: up, Engine: &pdp.Engine{}, MaxRevokeRatio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if _, err := metrics.New(reg, metrics.Sources{Policy: ref.Status}); err != nil {
		t.Fatal(err)
	}
	names := []string{"rolecall_policy_grants_gained_total", "rolecall_policy_grants_lost_total", "rolecall_policy_subjects_added_total",
		"rolecall_policy_subjects_removed_total", "rolecall_policy_held", "rolecall_policy_held_total"}
	check := func(step string, gained, lost, added, removed, held, heldTotal int) {
		t.Helper()
		want := fmt.Sprintf(`
# HELP rolecall_policy_grants_gained_total Grants (subject, organization, resource, action) that installed policies allowed and the ones they replaced did not.
# TYPE rolecall_policy_grants_gained_total counter
rolecall_policy_grants_gained_total %d
# HELP rolecall_policy_grants_lost_total Grants that the policies replaced allowed and the installed ones did not.
# TYPE rolecall_policy_grants_lost_total counter
rolecall_policy_grants_lost_total %d
# HELP rolecall_policy_subjects_added_total Subjects that installed policies added.
# TYPE rolecall_policy_subjects_added_total counter
rolecall_policy_subjects_added_total %d
# HELP rolecall_policy_subjects_removed_total Subjects that installed policies removed.
# TYPE rolecall_policy_subjects_removed_total counter
rolecall_policy_subjects_removed_total %d
# HELP rolecall_policy_held 1 while a fetched policy is held back for removing more grants than max_revoke_ratio allows.
# TYPE rolecall_policy_held gauge
rolecall_policy_held %d
# HELP rolecall_policy_held_total Fetched policies held back by max_revoke_ratio, each counted once.
# TYPE rolecall_policy_held_total counter
rolecall_policy_held_total %d
`, gained, lost, added, removed, held, heldTotal)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
	refreshTo := func(wantHeld bool) {
		t.Helper()
		if err := ref.RefreshOnce(t.Context()); errors.Is(err, refresh.ErrHeld) != wantHeld || (!wantHeld && err != nil) {
			t.Fatalf("refresh to document %d: %v, want held %v", up.i, err, wantHeld)
		}
	}
	refreshTo(false)
	check("the first policy", 0, 0, 0, 0, 0, 0)
	up.next()
	refreshTo(false)
	check("v1 → v2", 1, 2, 1, 2, 0, 0)
	up.next()
	refreshTo(false)
	check("v1 → v2 → v3", 1+2, 2+3, 1+2, 2+3, 0, 0)
	up.next()
	refreshTo(true)
	refreshTo(true) // the same held policy: counted once
	check("v4 held", 3, 5, 3, 5, 1, 1)
	up.next()
	refreshTo(true)
	check("another v4 held", 3, 5, 3, 5, 1, 2)
	if err := ref.Accept(t.Context(), "v4"); err != nil {
		t.Fatal(err)
	}
	check("v4 accepted", 3, 5+7, 3+1, 5+7, 0, 2)
}
