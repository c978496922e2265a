package authzen_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rolecall/rolecall/authzen"
	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
)

const searchPath = "/access/v1/search/subject"

// searcher answers Subject Search to any caller: a ResponseRecorder's
// request comes from 192.0.2.1, not loopback.
func searcher(engine *pdp.Engine) http.Handler {
	return authzen.Handler(decide.New(engine, decide.Options{WhoCan: decide.WhoCanAny}), authzen.Options{})
}

// searchBody is a Subject Search request for subjects of type user; org
// goes into context.org when set, page is the page object or "".
func searchBody(org, resource, action, page string) string {
	b := `{"subject": {"type": "user"}, "action": {"name": ` + strconv.Quote(action) + `}, "resource": {"type": ` + strconv.Quote(resource) + `, "id": "any"}`
	if org != "" {
		b += `, "context": {"org": ` + strconv.Quote(org) + `}`
	}
	if page != "" {
		b += `, "page": ` + page
	}
	return b + "}"
}

type searchAnswer struct {
	Page struct {
		NextToken *string `json:"next_token"`
		Count     int     `json:"count"`
	} `json:"page"`
	Context struct {
		Reason         string `json:"reason"`
		PolicyRevision string `json:"policy_revision"`
	} `json:"context"`
	Results []struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		Properties struct {
			MatchedRole string `json:"matched_role"`
		} `json:"properties"`
	} `json:"results"`
}

func search(t *testing.T, h http.Handler, body string) searchAnswer {
	t.Helper()
	w := call(h, "POST", searchPath, body)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", w.Code, w.Body)
	}
	var a searchAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	if a.Page.NextToken == nil || a.Page.Count != len(a.Results) || a.Results == nil {
		t.Fatalf("page %+v and %d results: want next_token, count and results always: %s", a.Page, len(a.Results), w.Body)
	}
	// §8.2.2: page comes first, as RECOMMENDED.
	if !strings.HasPrefix(w.Body.String(), `{"page":`) {
		t.Errorf("page is not the first member: %s", w.Body)
	}
	return a
}

// §8.4 and §10.1's example, on the bookstore.
func TestSearchSpecExample(t *testing.T) {
	srv := httptest.NewServer(authzen.Handler(decider(bookstore(t), nil), authzen.Options{}))
	defer srv.Close()
	resp, body := post(t, srv, searchPath, `{
	  "subject": {"type": "user"},
	  "action": {"name": "read:order"},
	  "resource": {"type": "https://api.store.io/orders", "id": "123"}
	}`, "X-Request-ID", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-ID") != "bfe9eb29-ab87-4ca3-be83-a1d5d8305716" {
		t.Fatalf("status %d, X-Request-ID %q: %s", resp.StatusCode, resp.Header.Get("X-Request-ID"), body)
	}
	jsonEqual(t, body, `{
	  "page": {"next_token": "", "count": 2},
	  "context": {"reason": "GRANTED", "policy_revision": "`+revision+`"},
	  "results": [
	    {"type": "user", "id": "alice", "properties": {"matched_role": "order_admin"}},
	    {"type": "user", "id": "carol", "properties": {"matched_role": "order_admin"}}
	  ]
	}`)
}

func TestSearchAnswersTheWhoCanCases(t *testing.T) {
	h := searcher(bookstore(t))
	for _, c := range rctest.WhoCanCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			got := []string{}
			page := `{"limit": 1}`
			for range 20 {
				a := search(t, h, searchBody(c.Org, c.Resource, c.Action, page))
				if a.Context.Reason != c.WantReason() || a.Context.PolicyRevision != revision {
					t.Errorf("context %+v, want reason %s", a.Context, c.WantReason())
				}
				for _, r := range a.Results {
					if r.Type != "user" {
						t.Errorf("result %+v: the type asked for is not echoed", r)
					}
					got = append(got, r.ID+" "+r.Properties.MatchedRole)
				}
				if *a.Page.NextToken == "" {
					break
				}
				page = `{"limit": 1, "token": ` + strconv.Quote(*a.Page.NextToken) + `}`
			}
			want := c.Subjects
			if want == nil {
				want = []string{}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("subjects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSearchPaging(t *testing.T) {
	engine := bookstore(t)
	h := searcher(engine)
	products := "https://api.store.io/products"
	first := search(t, h, searchBody("", products, "read:product", `{"limit": 3}`))
	if first.Page.Count != 3 || *first.Page.NextToken == "" {
		t.Fatalf("first page %+v: want 3 results and a next_token", first.Page)
	}
	tok := strconv.Quote(*first.Page.NextToken)
	second := search(t, h, searchBody("", products, "read:product", `{"limit": 3, "token": `+tok+`}`))
	if second.Page.Count != 1 || *second.Page.NextToken != "" || second.Results[0].ID != "svc-catalog-sync" {
		t.Errorf("second page %+v %+v: want svc-catalog-sync alone and next_token \"\"", second.Page, second.Results)
	}

	// §8.2: everything but the token MUST stay as it was; the PDP SHOULD
	// refuse a change.
	changed := map[string]string{
		"the limit":        searchBody("", products, "read:product", `{"limit": 2, "token": `+tok+`}`),
		"no limit":         searchBody("", products, "read:product", `{"token": `+tok+`}`),
		"the action":       searchBody("", products, "write:product", `{"limit": 3, "token": `+tok+`}`),
		"the organization": searchBody("acme", products, "read:product", `{"limit": 3, "token": `+tok+`}`),
		"the subject type": strings.Replace(searchBody("", products, "read:product", `{"limit": 3, "token": `+tok+`}`), `"user"`, `"agent"`, 1),
	}
	for name, body := range changed {
		t.Run("a token with "+name+" changed", func(t *testing.T) {
			wantError(t, call(h, "POST", searchPath, body), http.StatusBadRequest, "page.token: continues another search")
		})
	}
	for _, bad := range []string{`"nope"`, `"."`, `"abc.def"`, `"` + strings.Repeat("a", pdp.MaxIDLen+1) + `"`} {
		t.Run("token "+bad[:min(len(bad), 12)], func(t *testing.T) {
			wantError(t, call(h, "POST", searchPath, searchBody("", products, "read:product", `{"limit": 3, "token": `+bad+`}`)), http.StatusBadRequest, "page.token:")
		})
	}
	t.Run("a token of a revision no longer served", func(t *testing.T) {
		engine.Swap(bookstoreSnapshot(t, "bookstore-2026-11-21.1"))
		w := call(h, "POST", searchPath, searchBody("", products, "read:product", `{"limit": 3, "token": `+tok+`}`))
		wantError(t, w, http.StatusBadRequest, `page.token: is not a page token of policy revision "bookstore-2026-11-21.1"; start again without one`)
	})
}

func TestSearchLimits(t *testing.T) {
	h := searcher(bookstore(t))
	for _, limit := range []string{"0", "1000", "5000", "99999999999999999999999"} {
		a := search(t, h, searchBody("", rctest.Orders, "read:order", `{"limit": `+limit+`}`))
		if a.Page.Count != 2 {
			t.Errorf("limit %s: %d results, want 2", limit, a.Page.Count)
		}
	}
	a := search(t, h, searchBody("", rctest.Orders, "read:order", `{"properties": {"sort": "id"}}`))
	if a.Page.Count != 2 {
		t.Errorf("page properties: %d results, want 2", a.Page.Count)
	}
}

func TestSearchRefusals(t *testing.T) {
	h := searcher(bookstore(t))
	ok := func(org, page string) string { return searchBody(org, rctest.Orders, "read:order", page) }
	for _, tc := range []struct{ name, body, msg string }{
		{"no subject", `{"action": {"name": "read:order"}, "resource": {"type": "r", "id": "1"}}`, "subject: is required"},
		{"no subject type", strings.Replace(ok("", ""), `{"type": "user"}`, `{"id": "alice"}`, 1), "subject.type: is required"},
		{"an empty subject type", strings.Replace(ok("", ""), `"user"`, `""`, 1), "subject.type: must not be empty"},
		{"no action", `{"subject": {"type": "user"}, "resource": {"type": "r", "id": "1"}}`, "action: is required"},
		{"no resource", `{"subject": {"type": "user"}, "action": {"name": "a"}}`, "resource: is required"},
		{"an empty resource type", searchBody("", "", "read:order", ""), "resource.type: must not be empty"},
		{"an empty action", searchBody("", rctest.Orders, "", ""), "action.name: must not be empty"},
		{"a resource id that is a number", strings.Replace(ok("", ""), `"id": "any"`, `"id": 7`, 1), "resource.id: must be a string, not a number"},
		{"context.org empty", strings.Replace(ok("acme", ""), `"acme"`, `""`, 1), "context.org: must not be empty"},
		{"subject.properties.org not a string", strings.Replace(ok("", ""), `{"type": "user"}`, `{"type": "user", "properties": {"org": 1}}`, 1), "subject.properties.org: must be a string"},
		{"a page that is not an object", ok("", `[]`), "page: must be an object, not an array"},
		{"a negative limit", ok("", `{"limit": -1}`), "page.limit: -1 is not a non-negative integer"},
		{"a fractional limit", ok("", `{"limit": 1.5}`), "page.limit: 1.5 is not a non-negative integer"},
		{"an exponent limit", ok("", `{"limit": 1e2}`), "page.limit: 1e2 is not a non-negative integer"},
		{"a string limit", ok("", `{"limit": "5"}`), "page.limit: must be a non-negative integer, not a string"},
		{"a token that is not a string", ok("", `{"token": 5}`), "page.token: must be a string, not a number"},
		{"a duplicate member", strings.Replace(ok("", ""), `"action"`, `"page": {}, "page"`, 1), "duplicate member \"page\""},
		{"a body that is an array", `[]`, "request body must be a JSON object"},
		{"invalid UTF-8 in an ignored member", strings.Replace(ok("", ""), `"any"`, "\"any\", \"x\": \"\xff\"", 1), "not valid UTF-8"},
		{"an unpaired surrogate", strings.Replace(ok("", ""), strconv.Quote(rctest.Orders), `"\ud800"`, 1), "resource.type: is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(h, "POST", searchPath, tc.body), http.StatusBadRequest, tc.msg)
		})
	}
	t.Run("subject.id is ignored, whatever it holds", func(t *testing.T) {
		a := search(t, h, strings.Replace(ok("", ""), `{"type": "user"}`, `{"type": "user", "id": {"not": "a string"}}`, 1))
		if a.Page.Count != 2 {
			t.Errorf("%d results, want 2", a.Page.Count)
		}
	})
	t.Run("the organization from subject.properties.org", func(t *testing.T) {
		body := `{"subject": {"type": "user", "properties": {"org": "acme"}}, "action": {"name": "invite:member"}, "resource": {"type": "organization"}}`
		if a := search(t, h, body); len(a.Results) != 1 || a.Results[0].ID != "dave" {
			t.Errorf("results %+v, want dave", a.Results)
		}
	})
	t.Run("GET", func(t *testing.T) {
		wantError(t, call(h, "GET", searchPath, ""), http.StatusMethodNotAllowed, "use POST")
	})
	t.Run("not JSON", func(t *testing.T) {
		wantError(t, call(h, "POST", searchPath, ok("", ""), "Content-Type", "text/plain"), http.StatusUnsupportedMediaType, "Content-Type")
	})
	t.Run("over 1 MiB", func(t *testing.T) {
		big := strings.Replace(ok("", ""), `"any"`, `"any", "pad": "`+strings.Repeat("x", 1<<20)+`"`, 1)
		wantError(t, call(h, "POST", searchPath, big), http.StatusRequestEntityTooLarge, "over")
	})
	t.Run("no policy loaded", func(t *testing.T) {
		w := call(searcher(&pdp.Engine{}), "POST", searchPath, ok("", ""), "X-Request-ID", "r-503")
		wantError(t, w, http.StatusServiceUnavailable, "no policy loaded")
		if w.Header().Get("X-Request-ID") != "r-503" {
			t.Error("no X-Request-ID on a 503")
		}
	})
}

func TestSearchIsLocalByDefault(t *testing.T) {
	body := searchBody("", rctest.Orders, "read:order", "")
	engine := bookstore(t)
	local := authzen.Handler(decider(engine, nil), authzen.Options{})
	t.Run("a remote caller is refused", func(t *testing.T) {
		wantError(t, call(local, "POST", searchPath, body), http.StatusForbidden, "answered only over the Unix socket or from loopback")
	})
	t.Run("a loopback caller is answered", func(t *testing.T) {
		srv := httptest.NewServer(local)
		defer srv.Close()
		if resp, got := post(t, srv, searchPath, body); resp.StatusCode != http.StatusOK {
			t.Errorf("status %d: %s", resp.StatusCode, got)
		}
	})
	t.Run("off refuses everyone and is not advertised", func(t *testing.T) {
		off := authzen.Handler(decide.New(engine, decide.Options{WhoCan: decide.WhoCanOff}), authzen.Options{BaseURL: "https://pdp.example.com"})
		srv := httptest.NewServer(off)
		defer srv.Close()
		resp, got := post(t, srv, searchPath, body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(got), "turned off") {
			t.Errorf("status %d: %s", resp.StatusCode, got)
		}
		wantOK(t, call(off, "GET", authzen.MetadataPath, ""), `{"policy_decision_point": "https://pdp.example.com",
		  "access_evaluation_endpoint": "https://pdp.example.com/access/v1/evaluation",
		  "access_evaluations_endpoint": "https://pdp.example.com/access/v1/evaluations"}`)
	})
}
