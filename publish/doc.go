// Package publish serves the policy this rolecall holds to other rolecalls:
// the publish listener's GET /v1/policy. A hub rolecall reads the policy
// from its upstream once; every sidecar behind it reads the hub, through
// any HTTP cache or CDN, with If-None-Match and long polling, so that a
// change reaches the whole fleet within moments while the upstream sees
// one reader.
//
// # Publishing
//
// The refresher calls Publisher.Publish with every policy it swaps in (its
// Config.OnInstall). Publish builds the new published state off to the side
// and swaps it in through an atomic pointer; then it closes the previous
// state's channel, which wakes every waiting long poll at once. The
// decision path never touches the publisher.
//
// A state holds the snapshot bundle (package bundle): the compiled policy,
// sealed with its revision, its publication time and this publisher's name,
// and signed when a signing key is configured. A policy that itself came
// from a bundle (another publisher upstream) is republished byte for byte
// when there is no signing key, so the origin's signature still verifies;
// with a key it is sealed again, with the origin's revision, publication
// time and publisher, and signed with this key.
//
// # Representations
//
// GET /v1/policy negotiates by Accept:
//
//   - application/vnd.rolecall.snapshot (bundle.MediaType): the bundle; it
//     is also the answer without Accept and to */*, since every rolecall
//     consumer loads it without parsing or compiling.
//   - application/json: the canonical JSON document (policyfile.MarshalJSON),
//     written on the first JSON request for a state. A policy that came from
//     a bundle has no document: JSON is then 406.
//
// q-values are honoured (q=0 is "not acceptable"); on a tie the snapshot
// wins. Each representation is gzipped, at most once per state, for clients
// that accept gzip.
//
// # Entity tags
//
// The snapshot's ETag is the strong tag "<hex SHA-256 of the pdp snapshot>",
// the digest of the compiled content, not of the envelope: replicas of a hub
// that compiled the same policy give the same tag although their bundles'
// published_at (and signatures) differ, so a consumer moving between
// replicas behind a load balancer gets 304, not a copy of what it holds. The
// JSON's tag is its SHA-256. A gzipped answer's tag ends in "-gzip" inside
// the quotes; If-None-Match with either the identity or the gzip tag of the
// negotiated representation matches, and so does *.
//
// # Long polling
//
// A request with Prefer: wait=N (RFC 7240; N is capped at MaxWait, 300 s at
// most) whose If-None-Match matches the current representation is held until
// a new policy is published (200 with it), N seconds pass or the client goes
// away (304). Every answer of a request whose wait preference was applied,
// the immediate 200 to a stale tag included, says Preference-Applied:
// wait=N, so the consumer knows this server long-polls and asks again at
// once. Before the first policy, a request that asks to wait waits for it;
// one that does not, or whose wait ends first, gets 503 with Retry-After: 1.
// A held request costs one goroutine and one timer; publishing wakes every
// waiter by closing one channel.
//
// # Authentication
//
// With a bearer token file, every request needs Authorization: Bearer
// <token>; the file is read again at most once a second, so the token can be
// rotated without a restart, and a file that becomes unreadable or empty
// keeps the last good token. Mutual TLS is the listener's business (the
// command wraps it in grpcapi.TLSListener).
package publish
