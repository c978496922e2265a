// Package metrics exposes rolecall's Prometheus metrics on a registry passed
// in by the caller. Decisions are counted on the decision path with counters
// created up front, so observing one allocates nothing. The rest (policy
// sync, token validation, key sets, decision log) is read at scrape time from
// the cumulative counts the other packages keep, so that they need no
// Prometheus dependency.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/token"
)

// Sources are read at every scrape. Any may be nil.
type Sources struct {
	Policy      func() refresh.Status
	Tokens      func() token.Stats
	DecisionLog func() (written, dropped uint64)
	// Now defaults to time.Now.
	Now func() time.Time
}

// Metrics holds the metrics that are updated as things happen.
type Metrics struct {
	decisions [2][pdp.UnknownOrganization + 1]prometheus.Counter
	latency   prometheus.Histogram
	grpc      *grpcprom.ServerMetrics
}

// New registers every rolecall metric, the gRPC server metrics and the
// standard Go and process collectors on reg.
func New(reg prometheus.Registerer, src Sources) (*Metrics, error) {
	if src.Now == nil {
		src.Now = time.Now
	}
	m := &Metrics{}
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rolecall_decisions_total",
		Help: "Decisions made, by outcome and reason.",
	}, []string{"allowed", "reason"})
	for allowed := range 2 {
		for r := range m.decisions[allowed] {
			reason := pdp.Reason(r)
			if reason == pdp.ReasonUnspecified || (allowed == 1) != (reason == pdp.Granted) {
				continue // only combinations that can happen
			}
			m.decisions[allowed][r] = decisions.WithLabelValues(strconv.FormatBool(allowed == 1), reason.String())
		}
	}
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rolecall_decision_duration_seconds",
		Help:    "Time to decide, from a validated query to the decision, without the transport.",
		Buckets: []float64{100e-9, 250e-9, 500e-9, 1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 100e-6, 1e-3},
		// Native histograms too, for scrapers that take them.
		NativeHistogramBucketFactor:    1.1,
		NativeHistogramMaxBucketNumber: 100,
	})
	m.grpc = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3}),
	))
	for _, c := range []prometheus.Collector{
		decisions, m.latency, m.grpc, &scraped{src: src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ObserveDecision counts a decision and its latency. It allocates nothing.
func (m *Metrics) ObserveDecision(d pdp.Decision, latency time.Duration) {
	allowed := 0
	if d.Allowed {
		allowed = 1
	}
	if int(d.Reason) < len(m.decisions[allowed]) {
		if c := m.decisions[allowed][d.Reason]; c != nil {
			c.Inc()
		}
	}
	m.latency.Observe(latency.Seconds())
}

// GRPC returns the gRPC server metrics, whose interceptors the server
// installs.
func (m *Metrics) GRPC() *grpcprom.ServerMetrics { return m.grpc }

// Handler serves the registry's metrics in the Prometheus text format, or in
// OpenMetrics when the scraper asks for it.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// scraped turns the cumulative counts and status of the other packages into
// metrics at scrape time.
type scraped struct{ src Sources }

var (
	syncAttempts      = prometheus.NewDesc("rolecall_policy_sync_attempts_total", "Policy refreshes, by result: loaded (a new policy), not_modified (the upstream confirmed the one served), held (a policy held back by max_revoke_ratio, or still held), error.", []string{"result"}, nil)
	grantsGained      = prometheus.NewDesc("rolecall_policy_grants_gained_total", "Grants (subject, organization, resource, action) that installed policies allowed and the ones they replaced did not.", nil, nil)
	grantsLost        = prometheus.NewDesc("rolecall_policy_grants_lost_total", "Grants that the policies replaced allowed and the installed ones did not.", nil, nil)
	subjectsAdded     = prometheus.NewDesc("rolecall_policy_subjects_added_total", "Subjects that installed policies added.", nil, nil)
	subjectsRemoved   = prometheus.NewDesc("rolecall_policy_subjects_removed_total", "Subjects that installed policies removed.", nil, nil)
	policyHeld        = prometheus.NewDesc("rolecall_policy_held", "1 while a fetched policy is held back for removing more grants than max_revoke_ratio allows.", nil, nil)
	policiesHeld      = prometheus.NewDesc("rolecall_policy_held_total", "Fetched policies held back by max_revoke_ratio, each counted once.", nil, nil)
	syncLastSuccess   = prometheus.NewDesc("rolecall_policy_last_success_timestamp_seconds", "When the upstream last answered with a valid policy or a confirmation (Unix time).", nil, nil)
	policyAge         = prometheus.NewDesc("rolecall_policy_age_seconds", "Seconds since the last successful refresh.", nil, nil)
	policyInfo        = prometheus.NewDesc("rolecall_policy_info", "The policy being served (always 1): its revision, source, format (snapshot, json, yaml), publisher and signing key.", []string{"revision", "source", "format", "publisher", "signing_key"}, nil)
	policyPublished   = prometheus.NewDesc("rolecall_policy_published_timestamp_seconds", "When the served policy was first published by a rolecall publisher (Unix time); absent for a policy not from a publisher.", nil, nil)
	policyPropagation = prometheus.NewDesc("rolecall_policy_propagation_delay_seconds", "Seconds from the publisher publishing the served policy to this process serving it.", nil, nil)
	policyLongPolling = prometheus.NewDesc("rolecall_policy_long_polling", "1 while the upstream holds fetches open until the policy changes, 0 when it is polled on the interval.", nil, nil)
	policyLoaded      = prometheus.NewDesc("rolecall_policy_loaded", "1 when a policy is loaded and served, 0 when none is or it is withheld.", nil, nil)
	policyStale       = prometheus.NewDesc("rolecall_policy_stale", "1 when the last successful refresh is older than max_stale.", nil, nil)
	syncFailures      = prometheus.NewDesc("rolecall_policy_sync_consecutive_failures", "Refreshes that failed in a row.", nil, nil)
	policyObjects     = prometheus.NewDesc("rolecall_policy_objects", "Objects in the policy being served, by kind.", []string{"kind"}, nil)
	tokenValidations  = prometheus.NewDesc("rolecall_token_validations_total", "Token validations, by result (valid, or the error).", []string{"result"}, nil)
	tokenCacheHits    = prometheus.NewDesc("rolecall_verified_token_cache_hits_total", "Validations answered from the verified-token cache.", nil, nil)
	tokenCacheMisses  = prometheus.NewDesc("rolecall_verified_token_cache_misses_total", "Validations that had to verify a signature.", nil, nil)
	jwksFetches       = prometheus.NewDesc("rolecall_jwks_fetches_total", "Key set fetches, by issuer and result.", []string{"issuer", "result"}, nil)
	decisionLogWrites = prometheus.NewDesc("rolecall_decision_log_entries_total", "Decision log entries, by result: written, or dropped because the queue was full.", []string{"result"}, nil)
)

func (s *scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{syncAttempts, grantsGained, grantsLost, subjectsAdded, subjectsRemoved, policyHeld, policiesHeld, syncLastSuccess, policyAge, policyInfo, policyPublished, policyPropagation, policyLongPolling, policyLoaded, policyStale, syncFailures, policyObjects, tokenValidations, tokenCacheHits, tokenCacheMisses, jwksFetches, decisionLogWrites} {
		ch <- d
	}
}

func (s *scraped) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if s.src.Policy != nil {
		st := s.src.Policy()
		counter(syncAttempts, st.AttemptsLoaded, "loaded")
		counter(syncAttempts, st.AttemptsNotModified, "not_modified")
		counter(syncAttempts, st.AttemptsHeld, "held")
		counter(syncAttempts, st.AttemptsFailed, "error")
		counter(grantsGained, st.Changes.GrantsGained)
		counter(grantsLost, st.Changes.GrantsLost)
		counter(subjectsAdded, st.Changes.SubjectsAdded)
		counter(subjectsRemoved, st.Changes.SubjectsRemoved)
		gauge(policyHeld, boolValue(st.Held != nil))
		counter(policiesHeld, st.PoliciesHeld)
		gauge(syncFailures, float64(st.ConsecutiveFailures))
		gauge(policyStale, boolValue(st.Stale))
		gauge(policyLoaded, boolValue(st.Loaded && !st.Withheld))
		gauge(policyLongPolling, boolValue(st.LongPolling))
		if !st.LastSuccess.IsZero() {
			gauge(syncLastSuccess, float64(st.LastSuccess.UnixNano())/1e9)
			gauge(policyAge, s.src.Now().Sub(st.LastSuccess).Seconds())
		}
		if st.Loaded {
			gauge(policyInfo, 1, st.Revision, st.Source, st.Format, st.Publisher, st.SigningKey)
			if !st.PublishedAt.IsZero() {
				gauge(policyPublished, float64(st.PublishedAt.UnixNano())/1e9)
				gauge(policyPropagation, st.PropagationDelay.Seconds())
			}
			gauge(policyObjects, float64(st.Counts.Resources), "resources")
			gauge(policyObjects, float64(st.Counts.Roles), "roles")
			gauge(policyObjects, float64(st.Counts.Organizations), "organizations")
			gauge(policyObjects, float64(st.Counts.Subjects), "subjects")
		}
	}
	if s.src.Tokens != nil {
		st := s.src.Tokens()
		for code, n := range st.Results {
			result := "valid"
			if c := token.Code(code); c != token.OK {
				result = c.String()
			}
			counter(tokenValidations, n, result)
		}
		counter(tokenCacheHits, st.CacheHits)
		counter(tokenCacheMisses, st.CacheMisses)
		for _, f := range st.Fetches {
			counter(jwksFetches, f.OK, f.Issuer, "success")
			counter(jwksFetches, f.Failed, f.Issuer, "error")
		}
	}
	if s.src.DecisionLog != nil {
		written, dropped := s.src.DecisionLog()
		counter(decisionLogWrites, written, "written")
		counter(decisionLogWrites, dropped, "dropped")
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
