package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh/httpdoc"
)

func diffPolicies(ctx context.Context, args []string, sio stdio) error {
	fs := newFlags("policy diff", "policy diff OLD NEW | policy diff --against URL NEW",
		`Show the effective change between two policies: what Check answers
differently, not how the documents differ. For each subject and context
(globally, or inside an organization) it lists the roles added and removed and
the (resource, action) grants gained and lost; before that, the resources,
actions, roles and organizations added, removed or changed; last, the totals.
OLD and NEW are policy documents (YAML, JSON) or bundles (policy build). With
--against, OLD is the policy a running rolecall publishes: the URL of its
publish listener (GET /v1/policy). Subjects are listed in OLD's order, then
the subjects only NEW has, in its order. Exit code: 0 when nothing changed, 1
when something did, 2 on an error (like diff).`,
		`  rolecall policy diff examples/bookstore.yaml new-bookstore.yaml
  rolecall policy diff --against http://127.0.0.1:50054 new-bookstore.yaml --json`,
		sio.err)
	against := fs.String("against", "", "compare with the policy published at this `URL` (a rolecall publish listener, or the URL of any policy document or bundle)")
	tokenFile := fs.String("bearer-token-file", "", "with --against: `file` holding the publish listener's bearer token")
	caFile := fs.String("ca-file", "", "with --against: PEM `file` of CA certificates to trust")
	timeout := fs.Duration("timeout", 30*time.Second, "with --against: timeout of the fetch")
	pubPath := fs.String("public-key", "", "PEM `file` of an Ed25519 public key: bundles must be signed with it (documents are compiled as they are)")
	asJSON := fs.Bool("json", false, "print the change as one JSON object")
	summary := fs.Bool("summary", false, "print the definitions' changes and the totals, not each subject")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	want := 2
	if *against != "" {
		want = 1
	}
	if len(files) != want {
		if want == 1 {
			return usageError("with --against, name one policy file: the new one")
		}
		return usageError("name two policy files, OLD and NEW (or --against URL and NEW)")
	}
	var pub ed25519.PublicKey
	if *pubPath != "" {
		if pub, err = bundle.LoadPublicKey(*pubPath); err != nil {
			return err
		}
	}
	// The two policies load at once: at a million subjects each takes a
	// second or two.
	var old, new *pdp.Snapshot
	var g errgroup.Group
	g.Go(func() (err error) {
		if *against != "" {
			old, err = fetchSnapshot(ctx, *against, *tokenFile, *caFile, *timeout, pub)
		} else {
			old, err = readSnapshot(files[0], pub)
		}
		return err
	})
	g.Go(func() (err error) {
		new, err = readSnapshot(files[len(files)-1], pub)
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}

	c := pdp.Compare(old, new)
	w := bufio.NewWriter(sio.out)
	var totals pdp.Totals
	if *asJSON {
		totals, err = writeDiffJSON(w, c, *summary)
	} else {
		totals = writeDiffText(w, c, *summary)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return err
	}
	if totals.GrantsGained+totals.GrantsLost+totals.SubjectsAdded+totals.SubjectsRemoved+totals.SubjectsChanged > 0 || !c.Definitions().Empty() {
		return &exitErr{code: exitDeny, err: errSilent}
	}
	return nil
}

// readSnapshot reads a policy document or bundle file into a snapshot,
// naming the file in errors.
func readSnapshot(path string, pub ed25519.PublicKey) (*pdp.Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeSnapshot(path, data, pub)
}

// decodeSnapshot compiles a policy document, or opens a bundle (which must
// be signed with pub when pub is given), named name in errors.
func decodeSnapshot(name string, data []byte, pub ed25519.PublicKey) (*pdp.Snapshot, error) {
	if bundle.IsBundle(data) {
		_, snap, err := openBundle(name, data, pub)
		return snap, err
	}
	snap, err := policyfile.Compile(data, policyfile.DetectFormat(name, data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return snap, nil
}

// fetchSnapshot fetches the policy at rawURL as a sidecar would: the bundle
// when the server publishes one, else the document. A URL without a path
// names a publish listener: its /v1/policy.
func fetchSnapshot(ctx context.Context, rawURL, tokenFile, caFile string, timeout time.Duration, pub ed25519.PublicKey) (*pdp.Snapshot, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, usageError("--against: %v", err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/policy"
	}
	up, err := httpdoc.New(httpdoc.Config{URL: u.String(), BearerTokenFile: tokenFile, CAFile: caFile, Timeout: timeout})
	if err != nil {
		return nil, usageError("--against: %v", err)
	}
	doc, err := up.Fetch(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("--against %s: %w", u.Redacted(), err)
	}
	return decodeSnapshot(u.Redacted(), doc.Data, pub)
}

// writeDiffText writes the comparison for people and returns its totals.
func writeDiffText(w io.Writer, c *pdp.Comparison, summary bool) pdp.Totals {
	fmt.Fprintf(w, "policy diff: %s → %s\n", c.From(), c.To())
	d := c.Definitions()
	if !d.Empty() {
		fmt.Fprintf(w, "\ndefinitions:\n")
		for _, id := range d.ResourcesAdded {
			fmt.Fprintf(w, "  + resource %s\n", id)
		}
		for _, id := range d.ResourcesRemoved {
			fmt.Fprintf(w, "  - resource %s\n", id)
		}
		for _, p := range d.ActionsAdded {
			fmt.Fprintf(w, "  + action %s %s\n", p.Resource, p.Action)
		}
		for _, p := range d.ActionsRemoved {
			fmt.Fprintf(w, "  - action %s %s\n", p.Resource, p.Action)
		}
		for _, id := range d.RolesAdded {
			fmt.Fprintf(w, "  + role %s\n", id)
		}
		for _, id := range d.RolesRemoved {
			fmt.Fprintf(w, "  - role %s\n", id)
		}
		for _, r := range d.RolesChanged {
			fmt.Fprintf(w, "  ~ role %s:%s\n", r.Role, permissionsText(r.Gained, r.Lost))
		}
		for _, id := range d.OrganizationsAdded {
			fmt.Fprintf(w, "  + organization %s\n", id)
		}
		for _, id := range d.OrganizationsRemoved {
			fmt.Fprintf(w, "  - organization %s\n", id)
		}
		for _, o := range d.OrganizationsChanged {
			var parts []string
			if s := rolesText("default roles", o.DefaultRolesAdded, o.DefaultRolesRemoved); s != "" {
				parts = append(parts, s)
			}
			if o.ImplicitRulesChanged {
				parts = append(parts, "implicit rules changed")
			}
			fmt.Fprintf(w, "  ~ organization %s: %s\n", o.Organization, strings.Join(parts, "; "))
		}
	}
	header := false
	var visit func(*pdp.SubjectChange)
	if !summary {
		visit = func(ch *pdp.SubjectChange) {
			if !header {
				fmt.Fprintf(w, "\nsubjects:\n")
				header = true
			}
			mark := "~"
			switch {
			case ch.Added:
				mark = "+"
			case ch.Removed:
				mark = "-"
			}
			fmt.Fprintf(w, "  %s %s\n", mark, ch.Subject)
			for _, cc := range ch.Contexts {
				where := "global"
				if cc.Org != "" {
					where = "in " + cc.Org
				}
				var parts []string
				switch {
				case cc.Joined:
					parts = append(parts, "admitted")
				case cc.Left:
					parts = append(parts, "no longer admitted")
				}
				if s := rolesText("roles", cc.RolesAdded, cc.RolesRemoved); s != "" {
					parts = append(parts, s)
				}
				if s := permissionsText(cc.Gained, cc.Lost); s != "" {
					parts = append(parts, strings.TrimPrefix(s, " "))
				}
				fmt.Fprintf(w, "      %s: %s\n", where, strings.Join(parts, "; "))
			}
		}
	}
	t := c.Subjects(visit)
	fmt.Fprintf(w, "\n%s\n", totalsText(t))
	return t
}

func rolesText(what string, added, removed []string) string {
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "+ "+what+" "+strings.Join(added, ", "))
	}
	if len(removed) > 0 {
		parts = append(parts, "- "+what+" "+strings.Join(removed, ", "))
	}
	return strings.Join(parts, ", ")
}

// permissionsText spells grants gained and lost, each group of a resource
// once: " + R a, b; - R c".
func permissionsText(gained, lost []pdp.Permission) string {
	var b strings.Builder
	for _, g := range []struct {
		mark  string
		perms []pdp.Permission
	}{{"+", gained}, {"-", lost}} {
		for i, p := range g.perms {
			switch {
			case i == 0 || g.perms[i-1].Resource != p.Resource:
				if b.Len() > 0 {
					b.WriteString(";")
				}
				fmt.Fprintf(&b, " %s %s %s", g.mark, p.Resource, p.Action)
			default:
				fmt.Fprintf(&b, ", %s", p.Action)
			}
		}
	}
	return b.String()
}

func totalsText(t pdp.Totals) string {
	return fmt.Sprintf("grants: %d gained, %d lost (%d before, %d after); subjects: %d added, %d removed, %d changed",
		t.GrantsGained, t.GrantsLost, t.GrantsBefore, t.GrantsAfter, t.SubjectsAdded, t.SubjectsRemoved, t.SubjectsChanged)
}

// The JSON form of a comparison. Lists are never null.
type (
	diffJSON struct {
		From        string          `json:"from"`
		To          string          `json:"to"`
		Definitions definitionsJSON `json:"definitions"`
	}
	definitionsJSON struct {
		ResourcesAdded       []string      `json:"resources_added"`
		ResourcesRemoved     []string      `json:"resources_removed"`
		ActionsAdded         []permJSON    `json:"actions_added"`
		ActionsRemoved       []permJSON    `json:"actions_removed"`
		RolesAdded           []string      `json:"roles_added"`
		RolesRemoved         []string      `json:"roles_removed"`
		RolesChanged         []roleJSON    `json:"roles_changed"`
		OrganizationsAdded   []string      `json:"organizations_added"`
		OrganizationsRemoved []string      `json:"organizations_removed"`
		OrganizationsChanged []orgDiffJSON `json:"organizations_changed"`
	}
	permJSON struct {
		Resource string `json:"resource"`
		Action   string `json:"action"`
	}
	roleJSON struct {
		Role   string     `json:"role"`
		Gained []permJSON `json:"gained"`
		Lost   []permJSON `json:"lost"`
	}
	orgDiffJSON struct {
		Organization         string   `json:"organization"`
		DefaultRolesAdded    []string `json:"default_roles_added"`
		DefaultRolesRemoved  []string `json:"default_roles_removed"`
		ImplicitRulesChanged bool     `json:"implicit_rules_changed"`
	}
	subjectJSON struct {
		Subject  string        `json:"subject"`
		Added    bool          `json:"added"`
		Removed  bool          `json:"removed"`
		Contexts []contextJSON `json:"contexts"`
	}
	contextJSON struct {
		Org          string     `json:"org"`
		Joined       bool       `json:"joined"`
		Left         bool       `json:"left"`
		RolesAdded   []string   `json:"roles_added"`
		RolesRemoved []string   `json:"roles_removed"`
		Gained       []permJSON `json:"gained"`
		Lost         []permJSON `json:"lost"`
	}
	totalsJSON struct {
		GrantsBefore    int64 `json:"grants_before"`
		GrantsAfter     int64 `json:"grants_after"`
		GrantsGained    int64 `json:"grants_gained"`
		GrantsLost      int64 `json:"grants_lost"`
		SubjectsAdded   int64 `json:"subjects_added"`
		SubjectsRemoved int64 `json:"subjects_removed"`
		SubjectsChanged int64 `json:"subjects_changed"`
	}
)

func strs(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func perms(l []pdp.Permission) []permJSON {
	out := make([]permJSON, len(l))
	for i, p := range l {
		out[i] = permJSON{p.Resource, p.Action}
	}
	return out
}

// writeDiffJSON writes {"from", "to", "definitions", "subjects": [...],
// "totals"}, one subject at a time: a million changed subjects are never
// held at once. With summary, "subjects" is left out.
func writeDiffJSON(w io.Writer, c *pdp.Comparison, summary bool) (pdp.Totals, error) {
	d := c.Definitions()
	head := diffJSON{From: c.From(), To: c.To(), Definitions: definitionsJSON{
		ResourcesAdded: strs(d.ResourcesAdded), ResourcesRemoved: strs(d.ResourcesRemoved),
		ActionsAdded: perms(d.ActionsAdded), ActionsRemoved: perms(d.ActionsRemoved),
		RolesAdded: strs(d.RolesAdded), RolesRemoved: strs(d.RolesRemoved), RolesChanged: []roleJSON{},
		OrganizationsAdded: strs(d.OrganizationsAdded), OrganizationsRemoved: strs(d.OrganizationsRemoved),
		OrganizationsChanged: []orgDiffJSON{},
	}}
	for _, r := range d.RolesChanged {
		head.Definitions.RolesChanged = append(head.Definitions.RolesChanged, roleJSON{r.Role, perms(r.Gained), perms(r.Lost)})
	}
	for _, o := range d.OrganizationsChanged {
		head.Definitions.OrganizationsChanged = append(head.Definitions.OrganizationsChanged,
			orgDiffJSON{o.Organization, strs(o.DefaultRolesAdded), strs(o.DefaultRolesRemoved), o.ImplicitRulesChanged})
	}
	b, err := json.Marshal(head)
	if err != nil {
		return pdp.Totals{}, err
	}
	// Leave the object open for the subjects and the totals.
	if _, err := w.Write(b[:len(b)-1]); err != nil {
		return pdp.Totals{}, err
	}
	var visit func(*pdp.SubjectChange)
	if !summary {
		io.WriteString(w, `,"subjects":[`)
		first := true
		visit = func(ch *pdp.SubjectChange) {
			s := subjectJSON{Subject: ch.Subject, Added: ch.Added, Removed: ch.Removed, Contexts: []contextJSON{}}
			for _, cc := range ch.Contexts {
				s.Contexts = append(s.Contexts, contextJSON{cc.Org, cc.Joined, cc.Left, strs(cc.RolesAdded), strs(cc.RolesRemoved), perms(cc.Gained), perms(cc.Lost)})
			}
			if b, err2 := json.Marshal(s); err2 == nil {
				if !first {
					w.Write([]byte{','})
				}
				first = false
				w.Write(b)
			} else if err == nil {
				err = err2
			}
		}
	}
	t := c.Subjects(visit)
	if err != nil {
		return t, err
	}
	if !summary {
		io.WriteString(w, "]")
	}
	b, err = json.Marshal(totalsJSON(t))
	if err != nil {
		return t, err
	}
	_, err = fmt.Fprintf(w, `,"totals":%s}`+"\n", b)
	return t, err
}
