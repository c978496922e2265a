package refresh

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/rolecall/rolecall/pdp"
)

// Change is the effective change one policy makes against the one served
// before it (pdp.Compare): what Decide answers differently, not how the
// documents differ.
type Change struct {
	From, To string
	pdp.Totals
	// At is when the change was computed; Took how long that took.
	At   time.Time
	Took time.Duration
}

// Held is a fetched policy held back because it would remove a larger share
// of the served policy's grants than Config.MaxRevokeRatio allows. It is not
// kept in memory: accepting it fetches it again.
type Held struct {
	Revision string
	Change   Change
	// Reason says why, with the figures and how to accept it.
	Reason string
	// Since is when this policy was first held.
	Since time.Time
}

// ChangeCounts sums the changes of the policies installed in a process.
type ChangeCounts struct {
	GrantsGained, GrantsLost, SubjectsAdded, SubjectsRemoved uint64
}

func (c *ChangeCounts) add(t pdp.Totals) {
	c.GrantsGained += uint64(t.GrantsGained)
	c.GrantsLost += uint64(t.GrantsLost)
	c.SubjectsAdded += uint64(t.SubjectsAdded)
	c.SubjectsRemoved += uint64(t.SubjectsRemoved)
}

// ErrHeld is wrapped by the error of a refresh whose policy was held back.
var ErrHeld = errors.New("policy held back")

// AcceptError is why Accept installed nothing it was asked to: no policy is
// held, another revision is, or the upstream no longer has the one named.
type AcceptError struct{ msg string }

func (e *AcceptError) Error() string { return e.msg }

// heldCandidate is what the refresher remembers of a held policy: enough to
// know it again without compiling it, and to ask the upstream whether it
// changed.
type heldCandidate struct {
	sum [sha256.Size]byte
	// etag is the held document's tag, sent instead of the served one's so
	// that an unchanged upstream answers "not modified" cheaply; a 304 then
	// means "still the held policy", never "still the served one".
	etag   string
	status *Held
}

// compare computes the change from served to next and logs it.
func (r *Refresher) compare(served, next *pdp.Snapshot, now time.Time) *Change {
	start := time.Now()
	t := pdp.Compare(served, next).Subjects(nil)
	c := &Change{From: served.Revision(), To: next.Revision(), Totals: t, At: now, Took: time.Since(start)}
	r.log.Info("policy change", "from_revision", c.From, "to_revision", c.To,
		"grants_before", t.GrantsBefore, "grants_after", t.GrantsAfter, "grants_gained", t.GrantsGained, "grants_lost", t.GrantsLost,
		"subjects_added", t.SubjectsAdded, "subjects_removed", t.SubjectsRemoved, "subjects_changed", t.SubjectsChanged,
		"compare", c.Took.Round(100*time.Microsecond))
	return c
}

// suspicious returns why c is to be held back, or "".
func (r *Refresher) suspicious(c *Change) string {
	ratio := r.cfg.MaxRevokeRatio
	if ratio <= 0 || c.GrantsBefore <= 0 || float64(c.GrantsLost)/float64(c.GrantsBefore) <= ratio {
		return ""
	}
	return fmt.Sprintf("revision %q would remove %s of %s grants (%.1f%%), more than policy.max_revoke_ratio %v allows; confirm with POST /v1/refresh?accept=%s",
		c.To, thousands(c.GrantsLost), thousands(c.GrantsBefore), 100*float64(c.GrantsLost)/float64(c.GrantsBefore), ratio, url.QueryEscape(c.To))
}

// thousands spells n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	if neg {
		out = append(out, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// hold records l as held back instead of persisting and serving it. A
// different held policy is replaced. The upstream was reached and answered
// with a valid policy: the attempt is no failure (no backoff) and confirms
// the upstream for max_stale, but the reason is the last error until the
// hold ends.
func (r *Refresher) hold(now time.Time, l loaded, etag string, c *Change, reason string) error {
	err := fmt.Errorf("%w: %s", ErrHeld, reason)
	r.mu.Lock()
	r.held = &heldCandidate{sum: l.sum, etag: etag, status: &Held{Revision: l.snap.Revision(), Change: *c, Reason: reason, Since: now}}
	r.status.Held = r.held.status
	r.status.PoliciesHeld++
	r.heldSeenLocked(now, err)
	r.mu.Unlock()
	r.log.Error("policy held back; keeping the last good policy", "revision", l.snap.Revision(), "reason", reason)
	return err
}

// stillHeld records that the upstream still has the held policy (tagged
// etag now, when not ""), without compiling it again.
func (r *Refresher) stillHeld(now time.Time, etag string) error {
	r.mu.Lock()
	h := r.held
	if etag != "" {
		h.etag = etag
	}
	err := fmt.Errorf("%w: %s", ErrHeld, h.status.Reason)
	r.heldSeenLocked(now, err)
	r.mu.Unlock()
	r.log.Debug("the upstream still has the held policy", "revision", h.status.Revision)
	return err
}

func (r *Refresher) heldSeenLocked(now time.Time, err error) {
	r.status.LastSuccess = now
	r.status.LastError = err.Error()
	r.status.LastErrorAt = now
	r.status.ConsecutiveFailures = 0
	r.status.AttemptsHeld++
	r.retryAfter = 0
}

// dropHoldLocked forgets the held policy: the upstream no longer has it.
func (r *Refresher) dropHoldLocked() {
	r.held, r.status.Held = nil, nil
}

// acceptableLocked checks that revision is the one held.
func (r *Refresher) acceptableLocked(revision string) error {
	switch {
	case r.held == nil:
		return &AcceptError{"no policy is held"}
	case r.held.status.Revision != revision:
		return &AcceptError{fmt.Sprintf("held revision is %q, not %q", r.held.status.Revision, revision)}
	}
	return nil
}
