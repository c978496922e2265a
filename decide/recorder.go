package decide

import (
	"time"

	"github.com/rolecall/rolecall/decisionlog"
	"github.com/rolecall/rolecall/pdp"
)

// Recorder observes decisions. Record is called on the deciding goroutine,
// so it must be safe for concurrent use and quick.
type Recorder interface {
	// Record notes a decision of kind (a decisionlog kind) made since start.
	Record(kind, requestID string, q pdp.Query, d pdp.Decision, start time.Time)
}

// Measurer counts and times decisions: *metrics.Metrics. (An interface,
// so that this package needs none of the metrics' gRPC instrumentation.)
type Measurer interface {
	ObserveDecision(d pdp.Decision, latency time.Duration)
}

// NewRecorder fans decisions out to the metrics and the decision log, each
// when not nil (m nil or a non-nil pointer). With neither it returns nil, so
// that a Decider does not even read the clock.
func NewRecorder(m Measurer, log *decisionlog.Logger) Recorder {
	if m == nil && log == nil {
		return nil
	}
	return &fanout{metrics: m, log: log}
}

type fanout struct {
	metrics Measurer            // nil when not measured
	log     *decisionlog.Logger // nil when decisions are not logged
}

func (f *fanout) keepsRequestIDs() bool { return f.log != nil }

func (f *fanout) Record(kind, requestID string, q pdp.Query, d pdp.Decision, start time.Time) {
	latency := time.Since(start)
	if f.metrics != nil {
		f.metrics.ObserveDecision(d, latency)
	}
	if f.log != nil {
		f.log.Log(decisionlog.Entry{
			Time: start, Kind: kind, RequestID: requestID,
			Subject: q.Subject, Org: q.Org, Resource: q.Resource, Action: q.Action,
			Allowed: d.Allowed, Reason: d.Reason.String(), MatchedRole: d.MatchedRole, Revision: d.Revision,
			Latency: latency,
		})
	}
}
