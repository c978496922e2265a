/*
Package authzen serves the OpenID AuthZEN Authorization API 1.0 over HTTP,
answered by rolecall's policy decision point ([pdp.Engine]).

Section numbers below refer to "Authorization API 1.0", the final
specification of the OpenID AuthZEN working group (January 2026,
https://openid.net/specs/authorization-api-1_0-final.html).

# Endpoints

[Handler] serves the default paths of the HTTPS binding (§10.1, table "API
Endpoint Overview"):

	POST /access/v1/evaluation              Access Evaluation API (§6)
	POST /access/v1/evaluations             Access Evaluations API (§7)
	POST /access/v1/search/subject          Subject Search API (§8.4)
	GET  /.well-known/authzen-configuration PDP metadata (§9)

Of the Search APIs (§8), Subject Search is served; Resource Search (§8.5)
and Action Search (§8.6) are not (rolecall's resources are types, not
instances), so the metadata document leaves their endpoint parameters out,
which tells a PEP that this PDP does not offer them (§9.1.1). Any other path
is 404.

# Mapping to rolecall

rolecall answers role-based questions: may this subject perform this action
on this resource (type), optionally inside an organization. An AuthZEN
request maps onto a [pdp.Query] as follows.

	subject.id              → Query.Subject
	subject.type            required, a non-empty string; not used for the decision
	subject.properties.org  → Query.Org, unless context.org is present
	resource.type           → Query.Resource (rolecall's resource id, such as
	                          "https://api.store.io/orders" or "document")
	resource.id             required, a string; not used for the decision
	action.name             → Query.Action (such as "read:order" or "download")
	context.org             → Query.Org
	*.properties, other context members: accepted and ignored

subject.type may be anything ("user", "identity", "application", ...): the
policy knows whether a subject is a user or an m2m application, so the type
does not change the answer. resource.id is required by §5.2 but RBAC decides
on the type alone, so any string is accepted, even an empty one (a PEP asking a
type-level question has no instance id to send).

The organization is context.org if present, else subject.properties.org if
present, else none (global roles; see the pdp package). Either must be a
string. An empty string is rejected rather than read as "no organization": it
is more likely a PEP that lost its tenant than one that means the global
roles, and the global roles can grant what the organization does not.

Subject.id, the organization, resource.type and action.name are checked by
[pdp.Query.Validate] (not empty, at most [pdp.MaxIDLen] bytes, valid UTF-8)
on every evaluation, after defaults are applied. subject.type and resource.id
are bounded the same way. Strings are checked for invalid UTF-8 and unpaired
surrogate escapes in the raw JSON, since encoding/json would silently replace
both with U+FFFD (§11.5, I-JSON).

# Responses

A decision is a Decision object (§5.5, §6.2) whose context (§5.5.1; its
format is left to the implementation by §5.5.2) explains it:

	{
	  "decision": true,
	  "context": {
	    "reason": "GRANTED",
	    "matched_role": "order_admin",
	    "policy_revision": "bookstore-2026-11-20.1"
	  }
	}

reason is [pdp.Reason.String] (GRANTED, NO_PERMISSION, NOT_A_MEMBER,
UNKNOWN_SUBJECT, UNKNOWN_RESOURCE, UNKNOWN_ACTION, UNKNOWN_ORGANIZATION).
matched_role names the granting role and is omitted on a deny. A deny,
including for an unknown subject, resource, action or organization, is a 200
with "decision": false (§10.1.2: HTTP errors are never decisions).

# Access Evaluations

  - Defaults (§7.1, §7.1.1): the top-level subject, action, resource and
    context are defaults for every item of "evaluations". A key present in an
    item replaces the default for that key whole; objects are not merged. So
    an item with its own context does not inherit the default context.org. An
    item must end up with a subject, an action and a resource, from itself or
    from a default.
  - No items (§7.1): when "evaluations" is absent or empty, the request is a
    single Access Evaluation request (the top-level subject, action and
    resource are required) and the response is a single Decision object.
  - Response (§7.2): {"evaluations": [...]}, one Decision per evaluation made,
    in request order; the top-level "decision" is omitted as RECOMMENDED.
  - Semantics (§7.1.2, §7.1.2.1): options.evaluations_semantic is one of
    execute_all (the default: every item is evaluated and answered),
    deny_on_first_deny (items are evaluated in order and evaluation stops
    after the first deny, which is the last result returned) and
    permit_on_first_permit (likewise, stopping after the first permit). A
    short-circuited response therefore holds fewer results than the request
    had items, as in the specification's examples. Any other value is a 400.
  - Every evaluation of one request is answered by one policy snapshot, and
    the whole request is validated before anything is decided: one malformed
    item makes the request a 400, whatever the semantic.
  - At most [Options.MaxEvaluations] items (default 1000) per request; more
    is a 400 (§11.7).

# Subject Search

A Subject Search request (§8.4.1) asks which subjects may perform action on
resource, with the same mapping as an evaluation, less the subject's id:

	subject.type            required, a non-empty string; echoed as the type
	                        of every result
	subject.id              ignored, whatever it holds (§8.4.1: it "SHOULD be
	                        omitted, and if present, MUST be ignored")
	subject.properties.org  → the organization, unless context.org is present
	resource.type           → the resource
	resource.id             optional here (a string if present), not used:
	                        §8.2.3's examples omit it
	action.name             → the action
	context.org             → the organization, with the rules above
	page.token              the next_token of the previous page (§8.2.1)
	page.limit              at most this many results: a non-negative integer
	                        (digits only); 0 or absent for 100, above 1000
	                        lowered to 1000 (a limit is a maximum, §8.2.1)
	page.properties         accepted and ignored

It is answered by [decide.Decider.ListSubjects], so every result is a
subject an Access Evaluation of the same action, resource and organization
permits (§8.1), and the search is transitive as §8.1 recommends: default
roles and implicit rules (email domain, SSO connection, SSO group) are
followed. The response (§8.3) puts page first, as RECOMMENDED:

	{
	  "page": {"next_token": "", "count": 2},
	  "context": {"reason": "GRANTED", "policy_revision": "bookstore-2026-11-20.1"},
	  "results": [
	    {"type": "user", "id": "alice", "properties": {"matched_role": "order_admin"}},
	    {"type": "user", "id": "carol", "properties": {"matched_role": "order_admin"}}
	  ]
	}

page.next_token is always present, "" on the last page (§8.2.2); page.count
is the number of results; no total is given. The policy does not keep an
AuthZEN type per subject, so subject.type does not filter: every permitted
subject, user or machine-to-machine application, is returned with the type
asked for. context.reason is GRANTED, or UNKNOWN_RESOURCE, UNKNOWN_ACTION or
UNKNOWN_ORGANIZATION when the request names what the policy does not have
(then results is empty). Results come in the policy document's order; a page
before the last may hold fewer than page.limit results.

A next_token is bound to its search: §8.2 requires every entity and the
limit to stay as they were and says the PDP SHOULD refuse a change, so a
token sent with another subject.type, action, resource, organization or
limit is a 400, and so is one whose policy revision is no longer served
(start again without a token).

The answer lists subject ids in bulk, which an evaluation gives away only
one guessed id at a time, so the Decider's WhoCan option decides who gets
it: by default only callers from a loopback address (the PEPs on the
sidecar's host); 403 for others. With WhoCan off it is 403 for everyone and
search_subject_endpoint is not advertised.

# Errors

Errors are HTTP status codes (§10.1.2) with a JSON object body (§10.1.1: the
top level of every body is an object) holding the message string:

	{"error": "evaluations[3].subject.id: must not be empty"}

	400  body not JSON or not UTF-8, not an object, a duplicate member name
	     in an object rolecall reads (§11.5), a required member missing
	     (§10.1.1 requires a Bad Request), a member of the wrong type, an id
	     that fails pdp.Query.Validate, too many evaluations, an unknown
	     evaluations_semantic
	403  Subject Search refused to this caller (see Subject Search)
	404  unknown path
	405  wrong method (with an Allow header)
	413  body over 1 MiB (§11.7)
	415  Content-Type missing or not application/json (§10.1 says requests
	     MUST carry application/json)
	503  no policy loaded yet: rolecall fails closed

Members the package does not know are ignored, at every level (§10.1.1). A
member whose value is null is treated as absent (§11.5 asks senders to omit
nulls); a required one is then reported missing.

# Request identification

If the request carries X-Request-ID, every response to it, errors included,
carries the same X-Request-ID (§10.1.3: "the PDP MUST include the same
identifier in the response"). None is made up when the request has none.

# Metadata

GET /.well-known/authzen-configuration returns (§9.1.1, §9.2.2):

	{
	  "policy_decision_point": "https://pdp.example.com",
	  "access_evaluation_endpoint": "https://pdp.example.com/access/v1/evaluation",
	  "access_evaluations_endpoint": "https://pdp.example.com/access/v1/evaluations",
	  "search_subject_endpoint": "https://pdp.example.com/access/v1/search/subject"
	}

policy_decision_point is [Options.BaseURL]. When that is empty it is derived
from the request: "https" if the connection is TLS, else "http", and the Host
header. X-Forwarded-* headers are not trusted. A PEP must find the identifier
it used in the document (§9.2.3), so behind a proxy or TLS terminator set
BaseURL.
*/
package authzen
