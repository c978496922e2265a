package config

import (
	"crypto/ed25519"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/internal/strictyaml"
	"github.com/rolecall/rolecall/routes"
	"github.com/rolecall/rolecall/token"
)

const example = "../examples/rolecall.yaml"

// cmpConfig compares Configs, ignoring what token.ValidateConfigs keeps
// private in an IssuerConfig.
// cmpConfig ignores what YAML cannot tell apart: unexported fields, and nil
// from empty lists (a route's methods: [] and no methods both mean any).
var cmpConfig = cmp.Options{cmpopts.IgnoreUnexported(token.IssuerConfig{}), cmpopts.EquateEmpty()}

// problems splits an errors.Join error into its messages.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// writeFile writes a config document to a temporary rolecall.yaml.
func writeFile(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rolecall.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExampleLoadsAndValidates(t *testing.T) {
	cfg := Default()
	if err := cfg.LoadFile(example); err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate:\n%v", err)
	}
	if cfg.Policy.Upstream != "examples/bookstore.yaml" {
		t.Errorf("policy.upstream = %q", cfg.Policy.Upstream)
	}
	var profiles []token.Profile
	for _, is := range cfg.Issuers {
		profiles = append(profiles, is.Profile)
	}
	if want := []token.Profile{token.Logto, token.Stytch}; !slices.Equal(profiles, want) {
		t.Errorf("issuer profiles = %v, want %v", profiles, want)
	}
	// Apart from the values it shows on purpose, the example holds the
	// defaults.
	want := Default()
	want.Policy.Upstream = "examples/bookstore.yaml"
	want.Policy.MaxStale = time.Hour
	want.Issuers = cfg.Issuers
	want.Authz.Routes = cfg.Authz.Routes
	if len(cfg.Authz.Routes) != 4 {
		t.Errorf("the example has %d routes, want 4", len(cfg.Authz.Routes))
	}
	if diff := cmp.Diff(want, cfg, cmpConfig); diff != "" {
		t.Errorf("the example differs from the defaults (-want +got):\n%s", diff)
	}
}

// schemaKeys lists the key paths of the YAML form of t: sections and leaves,
// with "[]" for the elements of a list of mappings (issuers[].claims.org).
func schemaKeys(t *testing.T, typ reflect.Type, path string, keys map[string]bool) {
	t.Helper()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			t.Errorf("%s.%s has no yaml key", typ, f.Name)
			continue
		}
		key := strictyaml.Join(path, name)
		keys[key] = true
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct:
			schemaKeys(t, ft, key, keys)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			schemaKeys(t, ft.Elem(), key+"[]", keys)
		}
	}
}

// docKeys lists the key paths of a YAML node tree, as schemaKeys does.
func docKeys(n *yaml.Node, path string, keys map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			docKeys(c, path, keys)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := strictyaml.Join(path, n.Content[i].Value)
			keys[key] = true
			docKeys(n.Content[i+1], key, keys)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.MappingNode {
				docKeys(c, path+"[]", keys)
			}
		}
	}
}

// keyDrift reports the schema's keys missing from doc and doc's keys unknown
// to the schema.
func keyDrift(t *testing.T, doc []byte) (missing, unknown []string) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal(doc, &n); err != nil {
		t.Fatal(err)
	}
	schema, found := map[string]bool{}, map[string]bool{}
	schemaKeys(t, reflect.TypeFor[Config](), "", schema)
	docKeys(&n, "", found)
	for k := range schema {
		if !found[k] {
			missing = append(missing, k)
		}
	}
	for k := range found {
		if !schema[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(unknown)
	return missing, unknown
}

// TestExampleCoversEveryKey keeps examples/rolecall.yaml and the Config type
// in step: every key of one is in the other.
func TestExampleCoversEveryKey(t *testing.T) {
	doc, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	missing, unknown := keyDrift(t, doc)
	if len(missing) > 0 {
		t.Errorf("keys of config.Config missing from %s:\n  %s", example, strings.Join(missing, "\n  "))
	}
	if len(unknown) > 0 {
		t.Errorf("keys of %s unknown to config.Config:\n  %s", example, strings.Join(unknown, "\n  "))
	}
	// The walk reaches nested sections and the issuers' entries.
	schema := map[string]bool{}
	schemaKeys(t, reflect.TypeFor[Config](), "", schema)
	for _, k := range []string{"grpc.keepalive_min_time", "policy.http.client_key_file", "issuers[].claims.roles", "issuers[].hmac_secret_file", "decision_log.queue_size"} {
		if !schema[k] {
			t.Errorf("the schema walk misses %s", k)
		}
	}
}

// TestKeyDriftDetected checks that the drift test would fail.
func TestKeyDriftDetected(t *testing.T) {
	doc, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(doc), "  pprof: false\n", "  pprof_enabled: false\n", 1)
	edited = strings.Replace(edited, "      roles: \"\"\n", "      groups: \"\"\n", 1)
	missing, unknown := keyDrift(t, []byte(edited))
	if want := []string{"admin.pprof", "issuers[].claims.roles"}; !slices.Equal(missing, want) {
		t.Errorf("missing = %v, want %v", missing, want)
	}
	if want := []string{"admin.pprof_enabled", "issuers[].claims.groups"}; !slices.Equal(unknown, want) {
		t.Errorf("unknown = %v, want %v", unknown, want)
	}
}

// filled is a Config with a value other than the default in every field.
func filled() *Config {
	return &Config{
		GRPC: GRPC{
			Address:              "0.0.0.0:6000",
			UnixSocket:           "/run/rolecall/rolecall.sock",
			UnixSocketMode:       "0600",
			MaxRecvMsgBytes:      1 << 20,
			MaxConcurrentStreams: 64,
			KeepaliveMinTime:     30 * time.Second,
			GracePeriod:          3 * time.Second,
			TLS:                  ServerTLS{CertFile: "/etc/rolecall/tls/tls.crt", KeyFile: "/etc/rolecall/tls/tls.key", ClientCAFile: "/etc/rolecall/tls/ca.crt"},
		},
		Admin: Admin{Address: "127.0.0.1:7000", PProf: true},
		Cache: Cache{Path: "/var/lib/rolecall/cache.db"},
		Policy: Policy{
			Upstream:        "https://policy.internal/rolecall.json",
			RefreshInterval: 2 * time.Minute,
			MaxStale:        90 * time.Minute,
			OnStale:         "fail",
			MaxRevokeRatio:  0.25,
			PublicKeyFile:   "/etc/rolecall/publisher.pub",
			HTTP: HTTP{
				Timeout:           7 * time.Second,
				MaxBytes:          1 << 10,
				LongPollWait:      20 * time.Second,
				BearerTokenFile:   "/secrets/token",
				BearerTokenEnv:    "POLICY_TOKEN",
				BasicUser:         "rolecall",
				BasicPasswordFile: "/secrets/password",
				BasicPasswordEnv:  "POLICY_PASSWORD",
				CAFile:            "/etc/rolecall/ca.pem",
				ClientCertFile:    "/etc/rolecall/client.pem",
				ClientKeyFile:     "/etc/rolecall/client-key.pem",
			},
			Stytch: Stytch{SecretFile: "/secrets/stytch", BaseURL: "https://stytch.internal"},
			Logto: Logto{
				AppID:          "m2m-app",
				AppSecretFile:  "/secrets/logto",
				Resource:       "https://default.logto.app/api",
				WebhookKeyFile: "/secrets/webhook",
			},
		},
		Issuers: []token.IssuerConfig{{
			Issuer:               "https://idp.example.com",
			Profile:              token.Generic,
			JWKSURL:              "https://idp.example.com/keys",
			Audiences:            []string{"https://api.example.com", "api"},
			Algorithms:           []string{"HS256", "ES256"},
			ClockSkew:            5 * time.Second,
			Type:                 "at+jwt",
			Claims:               token.ClaimNames{Subject: "uid", ClientID: "azp", Scope: "scp", Org: "tenant", Roles: "groups"},
			Authorization:        token.ModePolicy,
			JWKSRefresh:          2 * time.Hour,
			OrganizationResource: "tenant",
			HMACSecretFile:       "/secrets/hmac",
		}},
		Log: Log{Level: "debug", Format: "json"},
		DecisionLog: DecisionLog{
			Enabled:         true,
			Output:          "/var/log/rolecall/decisions.jsonl",
			AllowSampleRate: 0.25,
			QueueSize:       500,
		},
		Authz: Authz{
			Address:         "127.0.0.1:9443",
			Default:         "allow",
			DryRun:          true,
			Audience:        "https://api.example.com",
			IdentityHeaders: IdentityHeaders{Subject: "x-user", Org: "x-tenant", Scopes: "x-scopes"},
			Routes: []routes.Route{
				{Methods: []string{"GET"}, Path: "/orgs/{org}/orders/{id}", Resource: "orders", Action: "read", Org: routes.OrgSource{PathParam: "org"}},
				{Prefix: "/admin/", Resource: "admin", Action: "use", Org: routes.OrgSource{Header: "X-Org"}},
				{Path: "/me", Resource: "me", Action: "read", Org: routes.OrgSource{Token: true}},
				{Prefix: "/public/", Public: true},
			},
		},
		Publish: Publish{
			Address:         "0.0.0.0:50054",
			BearerTokenFile: "/secrets/publish-token",
			TLS:             ServerTLS{CertFile: "/etc/rolecall/publish/tls.crt", KeyFile: "/etc/rolecall/publish/tls.key", ClientCAFile: "/etc/rolecall/publish/ca.crt"},
			SignKeyFile:     "/etc/rolecall/publish-sign.pem",
			Name:            "hub-0",
			MaxWait:         time.Minute,
		},
	}
}

// unset lists the leaf fields of got equal to those of def: the fields a
// round trip would not prove.
func unset(got, def reflect.Value, path string) []string {
	switch got.Kind() {
	case reflect.Struct:
		var out []string
		for i := range got.NumField() {
			if f := got.Type().Field(i); f.IsExported() {
				out = append(out, unset(got.Field(i), def.Field(i), strictyaml.Join(path, f.Name))...)
			}
		}
		return out
	case reflect.Slice:
		if got.Len() == 0 {
			return []string{path}
		}
		if got.Type().Elem().Kind() != reflect.Struct {
			return nil
		}
		// A field of the elements is proven when any element sets it: some
		// fields exclude each other within one element (a route's path and
		// prefix).
		zero := reflect.Zero(got.Type().Elem())
		count := map[string]int{}
		var order []string
		for i := range got.Len() {
			for _, p := range unset(got.Index(i), zero, path+"[]") {
				if count[p] == 0 {
					order = append(order, p)
				}
				count[p]++
			}
		}
		var out []string
		for _, p := range order {
			if count[p] == got.Len() {
				out = append(out, p)
			}
		}
		return out
	default:
		if got.Equal(def) {
			return []string{path}
		}
		return nil
	}
}

func TestEveryKeyRoundTrips(t *testing.T) {
	want := filled()
	if u := unset(reflect.ValueOf(*want), reflect.ValueOf(*Default()), ""); len(u) > 0 {
		t.Fatalf("filled() leaves fields at their defaults: %v", u)
	}
	doc, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := Default()
	if err := got.LoadFile(writeFile(t, string(doc))); err != nil {
		t.Fatalf("LoadFile:\n%v\n%s", err, doc)
	}
	if diff := cmp.Diff(want, got, cmpConfig); diff != "" {
		t.Errorf("round trip (-want +got):\n%s\n%s", diff, doc)
	}
}

func TestDefaultsForAbsentKeys(t *testing.T) {
	modified := func(mod func(*Config)) *Config {
		c := Default()
		mod(c)
		return c
	}
	tests := []struct {
		name string
		doc  string
		want *Config
	}{
		{"empty file", "", Default()},
		{"comments only", "# nothing yet\n", Default()},
		{"empty document", "---\n", Default()},
		{"trailing document separator", "log:\n  level: debug\n---\n", modified(func(c *Config) { c.Log.Level = "debug" })},
		{"one nested key", "policy:\n  upstream: policy.yaml\n", modified(func(c *Config) {
			c.Policy.Upstream = "policy.yaml"
		})},
		{"one key in a nested section", "policy:\n  http:\n    timeout: 5s\n", modified(func(c *Config) {
			c.Policy.HTTP.Timeout = 5 * time.Second
		})},
		{"sibling keys keep their defaults", "grpc:\n  unix_socket: /run/rolecall.sock\n  address: \"\"\n", modified(func(c *Config) {
			c.GRPC.UnixSocket = "/run/rolecall.sock"
			c.GRPC.Address = ""
		})},
		{"empty section", "grpc:\n  # address: 0.0.0.0:50051\nlog:\n", Default()},
		{"empty issuers", "issuers: []\n", modified(func(c *Config) { c.Issuers = []token.IssuerConfig{} })},
		{"issuer entries start from zero", "issuers:\n  - issuer: https://a.example\n    audiences: [x]\n    jwks_url:\n", modified(func(c *Config) {
			c.Issuers = []token.IssuerConfig{{Issuer: "https://a.example", Audiences: []string{"x"}}}
		})},
		{"anchors", "admin:\n  address: &a 127.0.0.1:9000\ncache:\n  path: *a\npolicy:\n  http: &h\n    timeout: 3s\n", modified(func(c *Config) {
			c.Admin.Address = "127.0.0.1:9000"
			c.Cache.Path = "127.0.0.1:9000"
			c.Policy.HTTP.Timeout = 3 * time.Second
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Default()
			if err := got.LoadFile(writeFile(t, tt.doc)); err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpConfig); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMergeKeys(t *testing.T) {
	doc := `issuers:
  - &common
    issuer: https://a.example
    audiences: [api]
    clock_skew: 5s
  - <<: *common
    issuer: https://b.example
`
	got := Default()
	if err := got.LoadFile(writeFile(t, doc)); err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	want := []token.IssuerConfig{
		{Issuer: "https://a.example", Audiences: []string{"api"}, ClockSkew: 5 * time.Second},
		{Issuer: "https://b.example", Audiences: []string{"api"}, ClockSkew: 5 * time.Second},
	}
	if diff := cmp.Diff(want, got.Issuers, cmpConfig); diff != "" {
		t.Errorf("issuers (-want +got):\n%s", diff)
	}

	bad := "base: &b\n  granc: 1\ngrpc:\n  <<: *b\n"
	err := Default().LoadFile(writeFile(t, bad))
	if err == nil || !strings.Contains(err.Error(), "line 2: unknown key grpc.granc") {
		t.Errorf("LoadFile = %v, want an unknown grpc.granc on line 2", err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // each the whole message after "PATH: "
	}{
		{
			name: "unknown key names its line and path",
			doc:  "grpc:\n  address: 127.0.0.1:50051\n  granc: x\n",
			want: []string{"line 3: unknown key grpc.granc; grpc has address, unix_socket, unix_socket_mode, max_recv_msg_bytes, max_concurrent_streams, keepalive_min_time, grace_period, tls"},
		},
		{
			name: "unknown key at the top, with a suggestion",
			doc:  "# a comment\npolcy:\n  upstream: x\n",
			want: []string{"line 2: unknown key polcy; did you mean policy? the file has grpc, admin, cache, policy, issuers, log, decision_log, authz, publish, who_can"},
		},
		{
			name: "unknown key in an issuer's claims",
			doc:  "issuers:\n  - issuer: https://a.example\n    claims:\n      subjct: uid\n",
			want: []string{"line 4: unknown key issuers[0].claims.subjct; did you mean issuers[0].claims.subject? issuers[0].claims has subject, client_id, scope, org, roles"},
		},
		{
			name: "every problem at once",
			doc:  "grpc:\n  grace_period: 5\n  max_recv_msg_bytes: 1.5\nadmin:\n  pprof: maybe\n  adress: x\npolicy:\n  max_stale: [1h]\ndecision_log:\n  allow_sample_rate: half\n",
			want: []string{
				`line 2: grpc.grace_period: "5": want a duration with its unit, such as 0s, 10s, 5m or 1h30m`,
				`line 3: grpc.max_recv_msg_bytes: "1.5": want an integer (64 bits)`,
				`line 5: admin.pprof: "maybe": want true or false`,
				"line 6: unknown key admin.adress; did you mean admin.address? admin has address, pprof",
				"line 8: policy.max_stale: want a duration with its unit, such as 0s, 10s, 5m or 1h30m, found a list",
				`line 10: decision_log.allow_sample_rate: "half": want a number`,
			},
		},
		{
			name: "duration without its unit",
			doc:  "policy:\n  refresh_interval: 0\n",
			want: []string{`line 2: policy.refresh_interval: "0": want a duration with its unit, such as 0s, 10s, 5m or 1h30m`},
		},
		{
			name: "key without a value",
			doc:  "grpc:\n  address:\n  max_concurrent_streams: ~\n",
			want: []string{
				`line 2: grpc.address has no value: write "" for an empty string, or leave the key out for its default`,
				"line 3: grpc.max_concurrent_streams has no value: want an integer (64 bits), or leave the key out for its default",
			},
		},
		{
			name: "duplicate key",
			doc:  "log:\n  level: info\n  level: debug\n",
			want: []string{"line 3: log.level is set twice (first at line 2)"},
		},
		{
			name: "scalar where a section belongs",
			doc:  "grpc: 127.0.0.1:50051\n",
			want: []string{`line 1: grpc: want a mapping of keys, found "127.0.0.1:50051"`},
		},
		{
			name: "mapping where issuers are a list",
			doc:  "issuers:\n  issuer: https://a.example\n",
			want: []string{"line 2: issuers: want a list, found a mapping"},
		},
		{
			name: "the file is a list",
			doc:  "- grpc\n",
			want: []string{"line 1: the file: want a mapping of keys, found a list"},
		},
		{
			name: "invalid YAML",
			doc:  "grpc:\n  address: [\n",
			want: []string{"line 2: did not find expected node content"},
		},
		{
			name: "two documents",
			doc:  "log:\n  level: info\n---\nlog:\n  level: debug\n",
			want: []string{"line 3: a second YAML document; want one"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.doc)
			cfg := Default()
			err := cfg.LoadFile(path)
			if err == nil {
				t.Fatal("LoadFile succeeded")
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, path+": "+w)
			}
			if diff := cmp.Diff(want, problems(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(Default(), cfg, cmpConfig); diff != "" {
				t.Errorf("a failed LoadFile changed the config:\n%s", diff)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	err := Default().LoadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("LoadFile = %v, want a not-exist error naming the file", err)
	}
}

// valid is a Config that passes Validate.
func valid() *Config {
	c := Default()
	c.Policy.Upstream = "examples/bookstore.yaml"
	return c
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"defaults and a file", func(*Config) {}},
		{"file URL", func(c *Config) { c.Policy.Upstream = "file:///etc/rolecall/policy.yaml" }},
		{"https with credentials", func(c *Config) {
			c.Policy.Upstream = "https://policy.internal/rolecall.json"
			c.Policy.HTTP.BearerTokenEnv = "POLICY_TOKEN"
			c.Policy.HTTP.ClientCertFile, c.Policy.HTTP.ClientKeyFile = "c.pem", "k.pem"
		}},
		{"http with basic auth", func(c *Config) {
			c.Policy.Upstream = "http://policy.internal:8080/p.yaml"
			c.Policy.HTTP.BasicUser, c.Policy.HTTP.BasicPasswordFile = "u", "/secrets/pw"
		}},
		{"stytch", func(c *Config) {
			c.Policy.Upstream = "stytch://project-test-00000000-0000-0000-0000-000000000000"
			c.Policy.Stytch.BaseURL = "https://test.stytch.com"
		}},
		{"logto", func(c *Config) {
			c.Policy.Upstream = "logto://your-tenant.logto.app"
			c.Policy.Logto.AppID = "m2m"
		}},
		{"unix socket only, stale fails", func(c *Config) {
			c.GRPC.Address, c.GRPC.UnixSocket = "", "/run/rolecall.sock"
			c.Admin.Address = ""
			c.Policy.MaxStale, c.Policy.OnStale = time.Hour, "fail"
		}},
		{"zero durations and edges", func(c *Config) {
			c.GRPC.Address = ":0"
			c.GRPC.KeepaliveMinTime, c.GRPC.GracePeriod = 0, 0
			c.Policy.HTTP.Timeout = 0
			c.DecisionLog.AllowSampleRate, c.DecisionLog.QueueSize = 0, 1
			c.Log.Level, c.Log.Format = "error", "json"
		}},
		{"an issuer", func(c *Config) {
			c.Issuers = []token.IssuerConfig{{Issuer: "https://a.example/oidc", Profile: token.Logto, Audiences: []string{"api"}}}
		}},
		{"publish on loopback, without authentication", func(c *Config) { c.Publish.Address = "127.0.0.1:50054" }},
		{"publish on localhost", func(c *Config) { c.Publish.Address = "localhost:50054" }},
		{"publish on IPv6 loopback", func(c *Config) { c.Publish.Address = "[::1]:50054" }},
		{"publish beyond loopback with a bearer token", func(c *Config) {
			c.Publish.Address, c.Publish.BearerTokenFile = "0.0.0.0:50054", "/secrets/publish-token"
		}},
		{"publish beyond loopback with mutual TLS", func(c *Config) {
			c.Publish.Address = ":50054"
			c.Publish.TLS = ServerTLS{CertFile: "tls.crt", KeyFile: "tls.key", ClientCAFile: "ca.crt"}
		}},
		{"publish max_wait at its limit", func(c *Config) { c.Publish.MaxWait = 5 * time.Minute }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mod(c)
			before := *c
			if err := c.Validate(); err != nil {
				t.Errorf("Validate:\n%v", err)
			}
			if diff := cmp.Diff(&before, c, cmpConfig); diff != "" {
				t.Errorf("Validate changed the config:\n%s", diff)
			}
		})
	}
}

// validateCase is a change to a valid config and the problems Validate
// reports for it, in order (nil: none).
type validateCase struct {
	name string
	mod  func(*Config)
	want []string
}

// checkProblems runs the cases against valid().
func checkProblems(t *testing.T, tests []validateCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mod(c)
			if diff := cmp.Diff(tt.want, problems(c.Validate())); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []validateCase{
		{"no upstream", func(c *Config) { c.Policy.Upstream = "" }, []string{
			"policy.upstream: required: a file path, file://PATH, http(s)://HOST/PATH, stytch://PROJECT_ID or logto://TENANT_HOST",
		}},
		{"unknown scheme", func(c *Config) { c.Policy.Upstream = "ftp://h/p" }, []string{
			`policy.upstream: unknown scheme "ftp": want a file path, file://, http://, https://, stytch:// or logto://`,
		}},
		{"empty file URL", func(c *Config) { c.Policy.Upstream = "file://" }, []string{"policy.upstream: want file://PATH"}},
		{"http without host", func(c *Config) { c.Policy.Upstream = "https:///p" }, []string{"policy.upstream: want https://HOST/PATH"}},
		{"credentials in the URL are not quoted", func(c *Config) { c.Policy.Upstream = "https://u:hunter2@h/p" }, []string{
			"policy.upstream: credentials belong in policy.http (a *_file or *_env key), not in the URL",
		}},
		{"stytch without project", func(c *Config) { c.Policy.Upstream = "stytch://" }, []string{"policy.upstream: want stytch://PROJECT_ID"}},
		{"logto without app id", func(c *Config) { c.Policy.Upstream = "logto://t.logto.app" }, []string{
			"policy.logto.app_id: required by a logto:// upstream: the id of a machine-to-machine app with Management API access",
		}},
		{"logto without host", func(c *Config) { c.Policy.Upstream = "logto://"; c.Policy.Logto.AppID = "a" }, []string{"policy.upstream: want logto://TENANT_HOST"}},
		{"no listener", func(c *Config) { c.GRPC.Address = "" }, []string{"grpc: address and unix_socket are both empty: set one or both"}},
		{"max_stale within a long poll", func(c *Config) { c.Policy.Upstream = "https://hub/v1/policy"; c.Policy.MaxStale = time.Minute }, []string{
			"policy.max_stale: 1m0s: must be longer than policy.http.long_poll_wait plus policy.http.timeout (1m25s), or a healthy long poll makes the policy stale",
		}},
		{"socket mode not octal", func(c *Config) { c.GRPC.UnixSocketMode = "rw-rw----" }, []string{`grpc.unix_socket_mode: "rw-rw----": want octal permission bits from 0000 to 0777, such as 0660`}},
		{"TLS key without a certificate", func(c *Config) { c.GRPC.TLS.KeyFile = "tls.key" }, []string{"grpc.tls.cert_file: must be set when grpc.tls has key_file or client_ca_file"}},
		{"TLS certificate without a key", func(c *Config) { c.GRPC.TLS.CertFile = "tls.crt" }, []string{"grpc.tls.key_file: must be set with cert_file"}},
		{"socket mode too large", func(c *Config) { c.GRPC.UnixSocketMode = "4777" }, []string{`grpc.unix_socket_mode: "4777": want octal permission bits from 0000 to 0777, such as 0660`}},
		{"bad addresses", func(c *Config) { c.GRPC.Address, c.Admin.Address = "50051", "localhost:99999" }, []string{
			`grpc.address: "50051": want HOST:PORT, such as 127.0.0.1:50051 or :50051`,
			`admin.address: "localhost:99999": want HOST:PORT, such as 127.0.0.1:50051 or :50051`,
		}},
		{"on_stale", func(c *Config) { c.Policy.OnStale = "panic" }, []string{`policy.on_stale: "panic": want serve or fail`}},
		{"fail needs max_stale", func(c *Config) { c.Policy.OnStale = "fail" }, []string{"policy.on_stale: fail needs policy.max_stale"}},
		{"max_revoke_ratio over 1", func(c *Config) { c.Policy.MaxRevokeRatio = 1.5 }, []string{
			"policy.max_revoke_ratio: 1.5: want 0 (off) to 1, the largest share of the served policy's grants a new policy may remove",
		}},
		{"max_revoke_ratio negative", func(c *Config) { c.Policy.MaxRevokeRatio = -0.1 }, []string{
			"policy.max_revoke_ratio: -0.1: want 0 (off) to 1, the largest share of the served policy's grants a new policy may remove",
		}},
		{"max_revoke_ratio not a number", func(c *Config) { c.Policy.MaxRevokeRatio = math.NaN() }, []string{
			"policy.max_revoke_ratio: NaN: want 0 (off) to 1, the largest share of the served policy's grants a new policy may remove",
		}},
		{"bearer file and env", func(c *Config) { c.Policy.HTTP.BearerTokenFile, c.Policy.HTTP.BearerTokenEnv = "f", "E" }, []string{
			"policy.http: bearer_token_file and bearer_token_env are both set: choose one",
		}},
		{"bearer with basic", func(c *Config) {
			c.Policy.HTTP.BearerTokenFile = "f"
			c.Policy.HTTP.BasicUser, c.Policy.HTTP.BasicPasswordEnv = "u", "PW"
		}, []string{"policy.http: a bearer token and basic_user are both set: choose a bearer token or basic auth"}},
		{"basic without password", func(c *Config) { c.Policy.HTTP.BasicUser = "u" }, []string{
			"policy.http.basic_user: needs basic_password_file or basic_password_env",
		}},
		{"basic password twice", func(c *Config) {
			c.Policy.HTTP.BasicUser, c.Policy.HTTP.BasicPasswordFile, c.Policy.HTTP.BasicPasswordEnv = "u", "f", "PW"
		}, []string{"policy.http: basic_password_file and basic_password_env are both set: choose one"}},
		{"password without user", func(c *Config) { c.Policy.HTTP.BasicPasswordFile = "f" }, []string{
			"policy.http: a basic auth password is set without basic_user",
		}},
		{"cert without key", func(c *Config) { c.Policy.HTTP.ClientCertFile = "c.pem" }, []string{"policy.http.client_cert_file: needs client_key_file"}},
		{"key without cert", func(c *Config) { c.Policy.HTTP.ClientKeyFile = "k.pem" }, []string{"policy.http.client_key_file: needs client_cert_file"}},
		{"a secret where its variable's name belongs", func(c *Config) { c.Policy.HTTP.BearerTokenEnv = "$TOKEN" }, []string{
			"policy.http.bearer_token_env: not an environment variable name: want the variable's NAME (letters, digits, _), not $NAME or the secret itself",
		}},
		{"stytch base_url", func(c *Config) { c.Policy.Stytch.BaseURL = "test.stytch.com" }, []string{
			`policy.stytch.base_url: "test.stytch.com": want an http(s) URL`,
		}},
		{"publish beyond loopback without authentication", func(c *Config) { c.Publish.Address = "0.0.0.0:50054" }, []string{
			`publish.address: "0.0.0.0:50054" reaches beyond loopback without authentication: set publish.bearer_token_file or publish.tls.client_ca_file (mutual TLS), since a published policy holds every subject's id and email`,
		}},
		{"publish on every interface with server-only TLS", func(c *Config) {
			c.Publish.Address = ":50054"
			c.Publish.TLS.CertFile, c.Publish.TLS.KeyFile = "tls.crt", "tls.key"
		}, []string{
			`publish.address: ":50054" reaches beyond loopback without authentication: set publish.bearer_token_file or publish.tls.client_ca_file (mutual TLS), since a published policy holds every subject's id and email`,
		}},
		{"publish on a host name", func(c *Config) { c.Publish.Address = "hub.internal:50054" }, []string{
			`publish.address: "hub.internal:50054" reaches beyond loopback without authentication: set publish.bearer_token_file or publish.tls.client_ca_file (mutual TLS), since a published policy holds every subject's id and email`,
		}},
		{"publish address", func(c *Config) { c.Publish.Address = "50054" }, []string{
			`publish.address: "50054": want HOST:PORT, such as 127.0.0.1:50051 or :50051`,
		}},
		{"publish TLS key without a certificate", func(c *Config) { c.Publish.TLS.KeyFile = "tls.key" }, []string{
			"publish.tls.cert_file: must be set when publish.tls has key_file or client_ca_file",
		}},
		{"publish client CA without a certificate", func(c *Config) { c.Publish.TLS.ClientCAFile = "ca.crt" }, []string{
			"publish.tls.cert_file: must be set when publish.tls has key_file or client_ca_file",
		}},
		{"publish TLS certificate without a key", func(c *Config) { c.Publish.TLS.CertFile = "tls.crt" }, []string{
			"publish.tls.key_file: must be set with cert_file",
		}},
		{"publish max_wait zero", func(c *Config) { c.Publish.MaxWait = 0 }, []string{"publish.max_wait: 0s: want more than 0s and at most 5m0s"}},
		{"publish max_wait negative", func(c *Config) { c.Publish.MaxWait = -time.Second }, []string{"publish.max_wait: -1s: want more than 0s and at most 5m0s"}},
		{"publish max_wait over 5m", func(c *Config) { c.Publish.MaxWait = 301 * time.Second }, []string{"publish.max_wait: 5m1s: want more than 0s and at most 5m0s"}},
		{"publish sign key missing", func(c *Config) { c.Publish.SignKeyFile = "/nonexistent/sign.pem" }, []string{
			"publish.sign_key_file: open /nonexistent/sign.pem: no such file or directory",
		}},
		{"an issuer", func(c *Config) {
			c.Issuers = []token.IssuerConfig{{Issuer: "stytch.com/project-x", Profile: token.Stytch}}
		}, []string{
			"issuers[0] (stytch.com/project-x): audiences: at least one is required (the API's resource indicator; for Stytch, the project id)",
			`issuers[0] (stytch.com/project-x): jwks_url is required when the issuer "stytch.com/project-x" is not an http(s) URL to discover it from`,
		}},
	}
	checkProblems(t, tests)
}

// The signing key must load: a public key, or a key of another kind, is
// refused with what was wanted.
func TestValidatePublishSignKey(t *testing.T) {
	dir := t.TempDir()
	priv, pub, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath := filepath.Join(dir, "sign.pem"), filepath.Join(dir, "verify.pem")
	if err := os.WriteFile(privPath, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	c := valid()
	c.Publish.SignKeyFile = privPath
	if err := c.Validate(); err != nil {
		t.Errorf("a generated signing key: %v", err)
	}
	c.Publish.SignKeyFile = pubPath
	want := []string{"publish.sign_key_file: " + pubPath + `: a PEM "PUBLIC KEY", want "PRIVATE KEY"`}
	if diff := cmp.Diff(want, problems(c.Validate())); diff != "" {
		t.Errorf("a public key as the signing key (-want +got):\n%s", diff)
	}
}

// TestValidateReportsEverything checks that every problem is reported at
// once, in the order of the schema, each naming its key path.
func TestValidateReportsEverything(t *testing.T) {
	c := Default()
	c.GRPC.Address = ""
	c.GRPC.MaxRecvMsgBytes = 0
	c.GRPC.MaxConcurrentStreams = -1
	c.GRPC.KeepaliveMinTime = -time.Second
	c.GRPC.GracePeriod = -2 * time.Second
	c.Cache.Path = ""
	c.Policy.RefreshInterval = -time.Minute
	c.Policy.MaxStale = -time.Hour
	c.Policy.OnStale = "fail"
	c.Policy.HTTP.Timeout = -time.Second
	c.Policy.HTTP.MaxBytes = -1
	c.Policy.HTTP.ClientCertFile = "c.pem"
	c.Log.Level = "verbose"
	c.Log.Format = "xml"
	c.DecisionLog.Output = ""
	c.DecisionLog.AllowSampleRate = 1.5
	c.DecisionLog.QueueSize = 0
	c.WhoCan = "everyone"
	c.Issuers = []token.IssuerConfig{
		{Issuer: "https://a.example", Audiences: []string{"x"}},
		{Issuer: "https://a.example", Audiences: []string{"x"}, Algorithms: []string{"none"}},
	}
	want := []string{
		"grpc: address and unix_socket are both empty: set one or both",
		"grpc.max_recv_msg_bytes: 0: want at least 1",
		"grpc.max_concurrent_streams: -1: want 1 to 4294967295",
		"grpc.keepalive_min_time: -1s: must not be negative",
		"grpc.grace_period: -2s: must not be negative",
		"cache.path: required: the cache file",
		"policy.upstream: required: a file path, file://PATH, http(s)://HOST/PATH, stytch://PROJECT_ID or logto://TENANT_HOST",
		"policy.refresh_interval: -1m0s: must not be negative",
		"policy.max_stale: -1h0m0s: must not be negative",
		"policy.on_stale: fail needs policy.max_stale",
		"policy.http.timeout: -1s: must not be negative",
		"policy.http.max_bytes: -1: want at least 1",
		"policy.http.client_cert_file: needs client_key_file",
		`log.level: "verbose": want debug, info, warn or error`,
		`log.format: "xml": want text or json`,
		"decision_log.output: required: stdout, stderr or a file path",
		"decision_log.allow_sample_rate: 1.5: want 0 to 1",
		"decision_log.queue_size: 0: want at least 1",
		"issuers[1] (https://a.example): duplicate of issuers[0]",
		`issuers[1] (https://a.example): algorithms: "none" is never allowed`,
		`who_can: "everyone": want local, any or off`,
	}
	if diff := cmp.Diff(want, problems(c.Validate())); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestValidateAuthz(t *testing.T) {
	c := Default()
	c.Policy.Upstream = "policy.yaml"
	c.Authz.Default = "maybe"
	c.Authz.Address = "nowhere"
	c.Authz.IdentityHeaders.Subject = "x user"
	c.Authz.Routes = []routes.Route{{Path: "orders", Resource: "r", Action: "a"}}
	got := problems(c.Validate())
	for _, want := range []string{
		`authz.default: "maybe": want deny or allow`,
		`authz.address: "nowhere": want HOST:PORT`,
		`authz.identity_headers.subject: "x user" is not a header name`,
		`authz.routes[0].path: "orders" must start with /`,
		"authz.routes: routes that check requests need issuers to validate their bearer tokens",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("Validate problems %q\nlack %q", got, want)
		}
	}
	// Public routes alone need no issuer.
	c = Default()
	c.Policy.Upstream = "policy.yaml"
	c.Authz.Routes = []routes.Route{{Prefix: "/", Public: true}}
	if err := c.Validate(); err != nil {
		t.Errorf("public routes without issuers: %v", err)
	}
}

// keyFiles writes the publisher's key pair as PEM files and returns their
// paths and the public key.
func keyFiles(t *testing.T) (pubFile, privFile string, pub ed25519.PublicKey) {
	t.Helper()
	priv, pubPEM, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pubFile, privFile = filepath.Join(dir, "publisher.pub"), filepath.Join(dir, "publisher.key")
	if err := os.WriteFile(pubFile, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(privFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err = bundle.LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	return pubFile, privFile, pub
}

func TestValidatePublisherSettings(t *testing.T) {
	pubFile, privFile, _ := keyFiles(t)
	notPEM := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(notPEM, []byte("ssh-ed25519 AAAA…"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "absent.pub")
	tests := []validateCase{
		{"the default wait", func(c *Config) { c.Policy.Upstream = "https://hub.internal/v1/policy" }, nil},
		{"long polling off", func(c *Config) { c.Policy.HTTP.LongPollWait = 0 }, nil},
		{"the longest wait", func(c *Config) { c.Policy.HTTP.LongPollWait = 300 * time.Second }, nil},
		{"a public key, for a file upstream too", func(c *Config) {
			c.Policy.Upstream = "policy.snap"
			c.Policy.PublicKeyFile = pubFile
		}, nil},
		{"a wait over 5m", func(c *Config) { c.Policy.HTTP.LongPollWait = 400 * time.Second }, []string{
			"policy.http.long_poll_wait: 6m40s: at most 5m0s",
		}},
		{"a negative wait", func(c *Config) { c.Policy.HTTP.LongPollWait = -time.Second }, []string{
			"policy.http.long_poll_wait: -1s: must not be negative",
		}},
		{"a wait under a second", func(c *Config) { c.Policy.HTTP.LongPollWait = 500 * time.Millisecond }, []string{
			"policy.http.long_poll_wait: 500ms: want 0 (off) or at least 1s (Prefer: wait counts whole seconds)",
		}},
		{"a missing public key", func(c *Config) { c.Policy.PublicKeyFile = missing }, []string{
			"policy.public_key_file: open " + missing + ": no such file or directory",
		}},
		{"a public key not in PEM", func(c *Config) { c.Policy.PublicKeyFile = notPEM }, []string{
			"policy.public_key_file: " + notPEM + `: no PEM block; want a PEM "PUBLIC KEY"`,
		}},
		{"the private key instead of the public one", func(c *Config) { c.Policy.PublicKeyFile = privFile }, []string{
			"policy.public_key_file: " + privFile + `: a PEM "PRIVATE KEY", want "PUBLIC KEY"`,
		}},
		{"every problem at once", func(c *Config) {
			c.Policy.PublicKeyFile = missing
			c.Policy.HTTP.LongPollWait = time.Hour
		}, []string{
			"policy.public_key_file: open " + missing + ": no such file or directory",
			"policy.http.long_poll_wait: 1h0m0s: at most 5m0s",
		}},
	}
	checkProblems(t, tests)
}

func TestPolicyPublicKeyAndLongPollWait(t *testing.T) {
	pubFile, _, pub := keyFiles(t)
	p := valid().Policy
	if k, err := p.PublicKey(); k != nil || err != nil {
		t.Errorf("PublicKey without a file = %v, %v; want none", k, err)
	}
	p.PublicKeyFile = pubFile
	if k, err := p.PublicKey(); err != nil || !k.Equal(pub) {
		t.Errorf("PublicKey = %x, %v; want %x", k, err, pub)
	}
	for upstream, want := range map[string]time.Duration{
		"https://hub.internal/v1/policy": DefaultLongPollWait,
		"http://127.0.0.1:8080/policy":   DefaultLongPollWait,
		"policy.snap":                    0,
		"file:///etc/rolecall/p.yaml":    0,
		"stytch://project-test-x":        0,
		"logto://t.logto.app":            0,
	} {
		p.Upstream = upstream
		if got := p.LongPollWait(); got != want {
			t.Errorf("LongPollWait for %s = %v, want %v", upstream, got, want)
		}
	}
}
