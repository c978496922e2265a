package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rolecall/rolecall/internal/rctest"
)

// whoCanJSON runs who-can --json --all with args and returns the subjects
// as "subject role", the reason and the exit code.
func whoCanJSON(t *testing.T, args ...string) ([]string, string, int) {
	t.Helper()
	code, out, errOut := runCmd(t, append([]string{"who-can", "--json", "--all"}, args...)...)
	var got struct {
		Subjects []struct {
			Subject     string `json:"subject"`
			MatchedRole string `json:"matched_role"`
		} `json:"subjects"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("who-can %q: exit %d, stdout %q, stderr %q: %v", args, code, out, errOut, err)
	}
	subjects := []string{}
	for _, s := range got.Subjects {
		subjects = append(subjects, s.Subject+" "+s.MatchedRole)
	}
	return subjects, got.Reason, code
}

// whoCanArgs are the flags asking case c.
func whoCanArgs(c rctest.WhoCanCase) []string {
	args := []string{"--resource", c.Resource, "--action", c.Action}
	if c.Org != "" {
		args = append(args, "--org", c.Org)
	}
	return args
}

func TestWhoCanLocal(t *testing.T) {
	for _, c := range rctest.WhoCanCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			subjects, reason, code := whoCanJSON(t, append([]string{"--policy", bookstore, "--limit", "1"}, whoCanArgs(c)...)...)
			want := c.Subjects
			if want == nil {
				want = []string{}
			}
			wantCode := 0
			if len(want) == 0 {
				wantCode = 1
			}
			if diff := cmp.Diff(want, subjects); diff != "" || reason != c.WantReason() || code != wantCode {
				t.Errorf("exit %d (want %d), reason %s (want %s), subjects (-want +got):\n%s", code, wantCode, reason, c.WantReason(), diff)
			}
		})
	}
}

func TestWhoCanText(t *testing.T) {
	products := []string{"who-can", "--policy", bookstore, "--resource", "https://api.store.io/products", "--action", "read:product"}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		inStderr string
	}{
		{"every subject, aligned", products, 0, `alice             (order_admin)
bob               (product_admin)
carol             (order_admin)
svc-catalog-sync  (catalog_sync)
4 subjects may read:product on https://api.store.io/products (policy revision bookstore-2026-11-20.1)
`, ""},
		{"all pages of one", append(products, "--limit", "1", "--all"), 0, `alice             (order_admin)
bob               (product_admin)
carol             (order_admin)
svc-catalog-sync  (catalog_sync)
4 subjects may read:product on https://api.store.io/products (policy revision bookstore-2026-11-20.1)
`, ""},
		{"in an organization", []string{"who-can", "--policy", bookstore, "--org", "acme", "--resource", "organization", "--action", "invite:member"}, 0,
			"dave  (admin)\n1 subject may invite:member on organization in acme (policy revision bookstore-2026-11-20.1)\n", ""},
		{"nobody", []string{"who-can", "--policy", bookstore, "--org", "globex", "--resource", rctest.Orders, "--action", "read:order"}, 1,
			"0 subjects may read:order on https://api.store.io/orders in globex (policy revision bookstore-2026-11-20.1)\n", ""},
		{"an unknown organization", []string{"who-can", "--policy", bookstore, "--org", "umbrella", "--resource", "organization", "--action", "read:member"}, 1,
			"no subject: UNKNOWN_ORGANIZATION (policy revision bookstore-2026-11-20.1)\n", ""},
		{"missing resource", []string{"who-can", "--policy", bookstore, "--action", "a"}, 2, "", "--resource: must not be empty"},
		{"limit over 1000", append(products, "--limit", "1001"), 2, "", "--limit: is 1001; want 0 (for 100) to 1000"},
		{"a bad page token", append(products, "--page-token", "nope"), 2, "", `--page-token: is not a page token of policy revision "bookstore-2026-11-20.1"`},
		{"stray argument", append(products, "extra"), 2, "", `unexpected arguments ["extra"]`},
		{"a missing policy file", []string{"who-can", "--policy", "nope.yaml", "--resource", "r", "--action", "a"}, 2, "", "nope.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tt.args...)
			if code != tt.code || out != tt.stdout || !strings.Contains(errOut, tt.inStderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q", code, out, errOut, tt.code, tt.stdout, tt.inStderr)
			}
		})
	}
}

// One page at a time, each continued by the token the last one printed.
func TestWhoCanPageTokens(t *testing.T) {
	args := []string{"who-can", "--policy", bookstore, "--resource", "https://api.store.io/products", "--action", "read:product", "--limit", "3"}
	code, out, _ := runCmd(t, args...)
	_, tok, ok := strings.Cut(out, "--page-token ")
	tok, _, _ = strings.Cut(tok, " ")
	if code != 0 || !ok || !strings.HasPrefix(out, "alice") || !strings.Contains(out, "this page: 3 subjects may") {
		t.Fatalf("first page: exit %d, stdout %q; want three subjects and a page token", code, out)
	}
	code, out, _ = runCmd(t, append(args, "--page-token", tok)...)
	if want := "svc-catalog-sync  (catalog_sync)\n1 subject may read:product on https://api.store.io/products (policy revision bookstore-2026-11-20.1)\n"; code != 0 || out != want {
		t.Errorf("second page: exit %d, stdout %q; want %q", code, out, want)
	}
}

func TestWhoCanRemote(t *testing.T) {
	d := startServe(t, t.TempDir(), "--policy", bookstore)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	// The Unix socket is a local caller: answered under the default
	// who_can: local.
	for _, c := range rctest.WhoCanCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			subjects, reason, _ := whoCanJSON(t, append([]string{"--unix-socket", d.sock, "--limit", "2"}, whoCanArgs(c)...)...)
			want := c.Subjects
			if want == nil {
				want = []string{}
			}
			if diff := cmp.Diff(want, subjects); diff != "" || reason != c.WantReason() {
				t.Errorf("reason %s (want %s), subjects (-want +got):\n%s", reason, c.WantReason(), diff)
			}
		})
	}
	code, _, errOut := runCmd(t, "who-can", "--unix-socket", d.sock, "--resource", rctest.Orders, "--action", "read:order", "--page-token", "nope")
	if code != 2 || !strings.Contains(errOut, "InvalidArgument: page_token: is not a page token") {
		t.Errorf("a bad page token: exit %d, stderr %q", code, errOut)
	}
}

func TestWhoCanRemoteTurnedOff(t *testing.T) {
	d := startServe(t, t.TempDir(), "--policy", bookstore, "--who-can", "off")
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	code, _, errOut := runCmd(t, "who-can", "--unix-socket", d.sock, "--resource", rctest.Orders, "--action", "read:order")
	if code != 2 || !strings.Contains(errOut, "PermissionDenied: who-can (ListSubjects) is turned off on this server (who_can: off)") {
		t.Errorf("exit %d, stderr %q; want 2 and PermissionDenied", code, errOut)
	}
	code, _, errOut = runCmd(t, "serve", "--policy", bookstore, "--who-can", "everyone")
	if code != 2 || !strings.Contains(errOut, `who_can: "everyone": want local, any or off`) {
		t.Errorf("serve --who-can everyone: exit %d, stderr %q", code, errOut)
	}
}

func TestWhoCanWithoutPolicyIsUnavailable(t *testing.T) {
	dir := t.TempDir()
	d := startServe(t, dir, "--policy", dir+"/missing.yaml")
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_NOT_SERVING)
	code, _, errOut := runCmd(t, "who-can", "--unix-socket", d.sock, "--resource", rctest.Orders, "--action", "read:order")
	if code != 2 || !strings.Contains(errOut, "Unavailable: no policy loaded yet") {
		t.Errorf("exit %d, stderr %q; want 2 and Unavailable", code, errOut)
	}
}
