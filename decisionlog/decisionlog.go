/*
Package decisionlog writes an optional audit log of authorization decisions:
one JSON object per line, one line per decision.

A decision must never wait for a disk. [Logger.Log] copies the [Entry] into a
bounded queue and returns; it never blocks and, when the queue has room,
allocates nothing. A single [Logger.Run] goroutine encodes the queued entries
and writes them to the configured io.Writer in batches: encoded lines are
gathered in memory and written with one Write call whenever the queue
momentarily empties (or the batch reaches 64 KiB), so a burst of decisions
costs few system calls. When the queue is full the entry is dropped and
counted ([Logger.Dropped], Options.OnDrop); a slow or stuck writer therefore
loses log lines, never decision latency.

Denied decisions are always logged. Allowed decisions may be sampled with
Options.AllowSampleRate; sampling draws from math/rand/v2's lock-free
per-thread generator, no mutex.

# Line format

Each line is a JSON object with these fields, in this order:

	{"time":"2026-11-21T12:00:00.123456Z","kind":"check","subject":"alice","org":"acme","resource":"https://api.store.io/orders","action":"read:order","allowed":true,"reason":"GRANTED","matched_role":"order_admin","revision":"r42","latency_ns":1234,"request_id":"7f3c…"}

The fields are:

  - time: when the decision was made, RFC 3339 in UTC with up to nanosecond
    precision, trailing zeros of the fraction trimmed (time.RFC3339Nano);
  - kind: the RPC or edge that decided: "check", "check_batch",
    "validate_token" (see [KindCheck] and friends);
  - subject, resource, action: the query;
  - org: the organization of the query; omitted when empty;
  - allowed: the decision;
  - reason: why, e.g. "GRANTED", "NO_PERMISSION" (pdp.Reason.String);
  - matched_role: the granting role; omitted when empty (always on a deny);
  - revision: the policy revision that decided (present even when empty);
  - latency_ns: time taken to decide, in nanoseconds (an integer);
  - request_id: the caller's x-request-id; omitted when empty.

Strings are encoded by encoding/json: quotes, backslashes and control
characters are escaped, and invalid UTF-8 is replaced by U+FFFD, so every line
is valid JSON and a value can never break a line. HTML characters (<, >, &)
are not escaped. New fields may be added in later versions; existing ones keep
their name and meaning.

If a Write fails, the entries of that batch are lost: they are counted by
[Logger.Failed] and reported to Options.OnWriteError, and Run carries on with
the next entries (each entry is attempted once; nothing is retried). If the
failed Write had written part of the batch, the next batch starts with a
newline, so the torn line stands alone and the following lines stay
parseable.

# Secrets

[Entry] has no field for a token, a credential or any request header other
than the request ID. Do not put secrets in its strings: they are logged
verbatim.
*/
package decisionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Kinds of decision, for Entry.Kind.
const (
	KindCheck         = "check"
	KindCheckBatch    = "check_batch"
	KindValidateToken = "validate_token"
)

// DefaultQueueSize is the queue size used when Options.QueueSize is 0.
const DefaultQueueSize = 10000

// maxBatch is the size at which Run writes a batch without waiting for the
// queue to empty.
const maxBatch = 64 << 10

// Entry is one decision. Log copies it into the queue by value; its strings
// are shared, not copied, so they must not be mutated afterwards (ordinary Go
// strings never are). No field may hold a token or another secret.
type Entry struct {
	// Time is when the decision was made. If zero, Log sets it to
	// time.Now().
	Time time.Time
	// Kind is the RPC or edge that decided: KindCheck, KindCheckBatch or
	// KindValidateToken.
	Kind     string
	Subject  string
	Org      string
	Resource string
	Action   string
	Allowed  bool
	// Reason is why, e.g. "GRANTED" or "NO_PERMISSION".
	Reason string
	// MatchedRole is the granting role; empty on a deny.
	MatchedRole string
	// Revision is the revision of the policy that decided.
	Revision string
	// Latency is the time taken to decide.
	Latency time.Duration
	// RequestID is the request's x-request-id, when present.
	RequestID string
}

// Options configures a Logger.
type Options struct {
	// Writer receives the JSON lines. Required. Only Run writes to it, from
	// a single goroutine; the Logger never closes it.
	Writer io.Writer
	// QueueSize is how many entries may wait for Run; 0 means
	// DefaultQueueSize. New allocates the whole queue: about 190 bytes an
	// entry (under 2 MB by default), strings excluded, as they are shared
	// with the caller.
	QueueSize int
	// AllowSampleRate is the fraction of allowed decisions logged, from 0
	// (none) to 1 (all); nil logs every allow. Set it with new(0.01), for
	// example. Denies are always logged. Allows left out by sampling are
	// not drops and are not counted.
	AllowSampleRate *float64
	// OnDrop, if not nil, is called once for every entry dropped because the
	// queue is full, from the goroutine calling Log (so possibly from many
	// at once). It must be cheap and must not block, like a Prometheus
	// counter's Inc.
	OnDrop func()
	// OnWriteError, if not nil, is called from Run's goroutine with the
	// error of every failed Write. It should not block for long: the queue
	// fills meanwhile.
	OnWriteError func(error)
}

// Logger is an asynchronous decision log. Its methods are safe for
// concurrent use. A nil *Logger discards entries, so that a disabled log
// costs one comparison: Log does nothing and the counters are zero.
type Logger struct {
	w            io.Writer
	queue        chan Entry
	allowAll     bool
	allowBelow   uint64 // an allow is logged when rand.Uint64() < allowBelow
	onDrop       func()
	onWriteError func(error)

	running atomic.Bool
	dropped atomic.Uint64
	written atomic.Uint64
	failed  atomic.Uint64
}

// New checks opts and returns a Logger. It reports every problem at once.
// Nothing is written until Run is called; entries logged before that wait in
// the queue.
func New(opts Options) (*Logger, error) {
	var errs []error
	if opts.Writer == nil {
		errs = append(errs, errors.New("decisionlog: Options.Writer is required"))
	}
	if opts.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("decisionlog: Options.QueueSize is %d; it must not be negative", opts.QueueSize))
	}
	rate := 1.0
	if opts.AllowSampleRate != nil {
		rate = *opts.AllowSampleRate
		// Written so that NaN fails too.
		if !(rate >= 0 && rate <= 1) {
			errs = append(errs, fmt.Errorf("decisionlog: Options.AllowSampleRate is %v; it must be between 0 and 1", rate))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	size := opts.QueueSize
	if size == 0 {
		size = DefaultQueueSize
	}
	l := &Logger{
		w:            opts.Writer,
		queue:        make(chan Entry, size),
		allowAll:     rate == 1,
		onDrop:       opts.OnDrop,
		onWriteError: opts.OnWriteError,
	}
	if rate < 1 {
		// rate·2⁶⁴ is below 2⁶⁴ for every rate below 1, so it converts.
		l.allowBelow = uint64(rate * (1 << 64))
	}
	return l, nil
}

// Log queues e for writing, unless e is an allow left out by sampling. It
// never blocks: when the queue is full, e is dropped and counted, and
// OnDrop is called. It allocates nothing.
func (l *Logger) Log(e Entry) {
	if l == nil {
		return
	}
	if e.Allowed && !l.allowAll && rand.Uint64() >= l.allowBelow {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	select {
	case l.queue <- e:
	default:
		l.dropped.Add(1)
		if l.onDrop != nil {
			l.onDrop()
		}
	}
}

// Dropped returns how many entries were dropped because the queue was full.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

// Written returns how many entries were written to the Writer.
func (l *Logger) Written() uint64 {
	if l == nil {
		return 0
	}
	return l.written.Load()
}

// Failed returns how many entries were lost because a Write failed.
func (l *Logger) Failed() uint64 {
	if l == nil {
		return 0
	}
	return l.failed.Load()
}

// errRunning is returned by a second call to Run.
var errRunning = errors.New("decisionlog: Run was already called")

// Run writes queued entries to the Writer until ctx is done. Then it writes
// the entries queued at that moment (at most the queue size; later ones stay
// queued and are eventually dropped) and returns nil. Run may be called only
// once per Logger; later calls return an error at once. On a nil Logger,
// Run returns nil at once.
//
// Write errors do not stop Run: see the package documentation.
func (l *Logger) Run(ctx context.Context) error {
	if l == nil {
		return nil
	}
	if !l.running.CompareAndSwap(false, true) {
		return errRunning
	}
	b := newBatch(l)
	done := ctx.Done()
	for {
		var e Entry
		select {
		case e = <-l.queue:
		default:
			// The queue is momentarily empty: write what we have, then
			// wait.
			b.flush()
			select {
			case e = <-l.queue:
			case <-done:
				b.drain()
				return nil
			}
		}
		b.add(e)
		if b.buf.Len() >= maxBatch {
			b.flush()
		}
		select {
		case <-done:
			b.drain()
			return nil
		default:
		}
	}
}

// batch gathers encoded lines between writes. It belongs to Run's goroutine.
type batch struct {
	l       *Logger
	buf     bytes.Buffer
	enc     *json.Encoder
	line    line
	entries uint64 // entries in buf
	// torn is set when a failed Write left a line unfinished, until a batch
	// is written.
	torn bool
}

// line is the JSON form of an Entry; see the package documentation.
type line struct {
	Time        string `json:"time"`
	Kind        string `json:"kind"`
	Subject     string `json:"subject"`
	Org         string `json:"org,omitempty"`
	Resource    string `json:"resource"`
	Action      string `json:"action"`
	Allowed     bool   `json:"allowed"`
	Reason      string `json:"reason"`
	MatchedRole string `json:"matched_role,omitempty"`
	Revision    string `json:"revision"`
	LatencyNS   int64  `json:"latency_ns"`
	RequestID   string `json:"request_id,omitempty"`
}

func newBatch(l *Logger) *batch {
	b := &batch{l: l}
	b.enc = json.NewEncoder(&b.buf)
	b.enc.SetEscapeHTML(false)
	return b
}

// add encodes e at the end of the batch.
func (b *batch) add(e Entry) {
	b.line = line{
		// Formatted here rather than by time.Time.MarshalJSON, which fails
		// on years outside 0..9999.
		Time:        e.Time.UTC().Format(time.RFC3339Nano),
		Kind:        e.Kind,
		Subject:     e.Subject,
		Org:         e.Org,
		Resource:    e.Resource,
		Action:      e.Action,
		Allowed:     e.Allowed,
		Reason:      e.Reason,
		MatchedRole: e.MatchedRole,
		Revision:    e.Revision,
		LatencyNS:   int64(e.Latency),
		RequestID:   e.RequestID,
	}
	if b.torn && b.buf.Len() == 0 {
		// A failed Write left part of a line: end it first.
		b.buf.WriteByte('\n')
	}
	mark := b.buf.Len()
	if err := b.enc.Encode(&b.line); err != nil {
		// Unreachable with these field types; keep the batch well formed
		// anyway.
		b.buf.Truncate(mark)
		b.l.failed.Add(1)
		if b.l.onWriteError != nil {
			b.l.onWriteError(fmt.Errorf("decisionlog: encoding an entry: %w", err))
		}
		return
	}
	b.entries++
}

// flush writes the batch with one Write call.
func (b *batch) flush() {
	if b.entries == 0 {
		return
	}
	p := b.buf.Bytes()
	n, err := b.l.w.Write(p)
	n = max(0, min(n, len(p)))
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		b.l.failed.Add(b.entries)
		if n > 0 {
			b.torn = p[n-1] != '\n'
		}
		if b.l.onWriteError != nil {
			b.l.onWriteError(err)
		}
	} else {
		b.l.written.Add(b.entries)
		b.torn = false
	}
	b.entries = 0
	if b.buf.Cap() > 4*maxBatch {
		// Do not keep a buffer grown by a few huge entries. The encoder
		// keeps writing to &b.buf.
		b.buf = bytes.Buffer{}
	} else {
		b.buf.Reset()
	}
}

// drain adds the entries queued now, at most a queue's worth, and writes
// them.
func (b *batch) drain() {
	for range len(b.l.queue) {
		select {
		case e := <-b.l.queue:
			b.add(e)
			if b.buf.Len() >= maxBatch {
				b.flush()
			}
		default:
		}
	}
	b.flush()
}
