// Tests of rolecall's deployment files: each is decoded strictly into the
// types its consumer uses (Envoy's bootstrap proto, the Kubernetes API types),
// validated, and checked against what deploy/README.md promises.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "sigs.k8s.io/yaml"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlyheadermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	// Registered for the typed_config of the router filter; the other type
	// URLs in envoy.yaml come with the packages imported above.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
)

// The identity headers rolecall sets on an allowed request.
var identityHeaders = []string{"X-Rolecall-Subject", "X-Rolecall-Org", "X-Rolecall-Scopes"}

// ---------------------------------------------------------------------------
// Envoy

// loadEnvoy decodes envoy.yaml strictly (unknown fields, unknown Any types and
// duplicate keys are errors) and applies the protoc-gen-validate rules of the
// bootstrap and of every message packed in an Any.
func loadEnvoy(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	data, err := os.ReadFile("envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := k8syaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("envoy.yaml is not valid YAML: %v", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, b); err != nil {
		t.Fatalf("envoy.yaml is not a v3 Bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("envoy.yaml fails validation: %v", err)
	}
	for _, p := range checkMessage(b, "bootstrap") {
		t.Error(p)
	}
	return b
}

type validatorAll interface{ ValidateAll() error }

// checkMessage walks m and returns its problems: a packed message that fails
// its own validation (ValidateAll does not look inside an Any), and any
// deprecated field or enum value that is set.
func checkMessage(m proto.Message, at string) []string {
	var problems []string
	var walk func(m protoreflect.Message, at string)
	walk = func(m protoreflect.Message, at string) {
		if a, ok := m.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", at, err))
				return
			}
			at += "(" + string(inner.ProtoReflect().Descriptor().FullName()) + ")"
			if v, ok := inner.(validatorAll); ok {
				if err := v.ValidateAll(); err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", at, err))
				}
			}
			walk(inner.ProtoReflect(), at)
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := at + "." + string(fd.Name())
			if fd.Options().(*descriptorpb.FieldOptions).GetDeprecated() {
				problems = append(problems, name+" is deprecated")
			}
			switch {
			case fd.IsList():
				for i := 0; i < v.List().Len(); i++ {
					checkValue(fd, v.List().Get(i), fmt.Sprintf("%s[%d]", name, i), walk, &problems)
				}
			case fd.IsMap():
				v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
					checkValue(fd.MapValue(), v, fmt.Sprintf("%s[%v]", name, k), walk, &problems)
					return true
				})
			default:
				checkValue(fd, v, name, walk, &problems)
			}
			return true
		})
	}
	walk(m.ProtoReflect(), at)
	return problems
}

func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, at string, walk func(protoreflect.Message, string), problems *[]string) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		walk(v.Message(), at)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil && ev.Options().(*descriptorpb.EnumValueOptions).GetDeprecated() {
			*problems = append(*problems, fmt.Sprintf("%s: %s is deprecated", at, ev.Name()))
		}
	}
}

// matches reports whether Envoy's string matcher p matches the header name h
// (Envoy keeps header names in lower case).
func matches(p *matcherv3.StringMatcher, h string) bool {
	v, fold := h, p.GetIgnoreCase()
	cmp := func(pattern string, f func(s, pattern string) bool) bool {
		if fold {
			return f(strings.ToLower(v), strings.ToLower(pattern))
		}
		return f(v, pattern)
	}
	switch p.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return cmp(p.GetExact(), func(s, x string) bool { return s == x })
	case *matcherv3.StringMatcher_Prefix:
		return cmp(p.GetPrefix(), strings.HasPrefix)
	case *matcherv3.StringMatcher_Suffix:
		return cmp(p.GetSuffix(), strings.HasSuffix)
	case *matcherv3.StringMatcher_Contains:
		return cmp(p.GetContains(), strings.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile(`^(?:` + p.GetSafeRegex().GetRegex() + `)$`)
		return err == nil && re.MatchString(v)
	}
	return false
}

func unpack[M proto.Message](t *testing.T, a *anypb.Any, m M) M {
	t.Helper()
	if a == nil {
		t.Fatalf("no typed_config for %T", m)
	}
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("typed_config %s is not a %T: %v", a.GetTypeUrl(), m, err)
	}
	return m
}

func socketAddress(a *corev3.Address) string {
	if sa := a.GetSocketAddress(); sa != nil {
		return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	}
	if p := a.GetPipe(); p != nil {
		return "unix:" + p.GetPath()
	}
	return ""
}

func clusterAddresses(c *clusterv3.Cluster) []string {
	var out []string
	for _, e := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range e.GetLbEndpoints() {
			out = append(out, socketAddress(lb.GetEndpoint().GetAddress()))
		}
	}
	return out
}

func TestEnvoyBootstrap(t *testing.T) {
	t.Parallel()
	b := loadEnvoy(t)

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		if clusters[c.GetName()] != nil {
			t.Errorf("cluster %q defined twice", c.GetName())
		}
		clusters[c.GetName()] = c
	}

	// The admin interface stays on loopback.
	if got := socketAddress(b.GetAdmin().GetAddress()); got != "127.0.0.1:9901" {
		t.Errorf("admin address = %q, want 127.0.0.1:9901", got)
	}

	// One listener on 0.0.0.0:8080 with one HTTP connection manager.
	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		t.Fatalf("%d listeners, want 1", len(listeners))
	}
	l := listeners[0]
	if got := socketAddress(l.GetAddress()); got != "0.0.0.0:8080" {
		t.Errorf("listener address = %q, want 0.0.0.0:8080", got)
	}
	var hcm *hcmv3.HttpConnectionManager
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetName() != "envoy.filters.network.http_connection_manager" {
				continue
			}
			if hcm != nil {
				t.Fatal("more than one HTTP connection manager")
			}
			hcm = unpack(t, f.GetTypedConfig(), &hcmv3.HttpConnectionManager{})
		}
	}
	if hcm == nil {
		t.Fatal("no envoy.filters.network.http_connection_manager")
	}

	// rolecall decides on the path the app gets.
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() {
		t.Error("the HTTP connection manager must set normalize_path and merge_slashes")
	}

	// Client-sent identity headers are removed before any filter runs.
	removed := map[string]bool{}
	for _, ext := range hcm.GetEarlyHeaderMutationExtensions() {
		hm := unpack(t, ext.GetTypedConfig(), &earlyheadermutationv3.HeaderMutation{})
		for _, m := range hm.GetMutations() {
			if r := m.GetRemove(); r != "" {
				removed[strings.ToLower(r)] = true
			}
		}
	}
	for _, h := range identityHeaders {
		if !removed[strings.ToLower(h)] {
			t.Errorf("early_header_mutation_extensions do not remove the client's %s", h)
		}
	}

	// Filters: ext_authz, then the router, last.
	filters := hcm.GetHttpFilters()
	var names []string
	for _, f := range filters {
		names = append(names, f.GetName())
	}
	if want := []string{"envoy.filters.http.ext_authz", "envoy.filters.http.router"}; !slices.Equal(names, want) {
		t.Fatalf("http_filters = %q, want %q", names, want)
	}
	if filters[0].GetDisabled() || filters[0].GetIsOptional() {
		t.Error("ext_authz must be neither disabled nor optional")
	}

	ea := unpack(t, filters[0].GetTypedConfig(), &extauthzv3.ExtAuthz{})
	if ea.GetHttpService() != nil {
		t.Error("ext_authz uses an HTTP service; want rolecall's gRPC service")
	}
	gs := ea.GetGrpcService()
	if got := gs.GetEnvoyGrpc().GetClusterName(); got != "rolecall" {
		t.Errorf("ext_authz grpc_service.envoy_grpc.cluster_name = %q, want rolecall", got)
	}
	if d := gs.GetTimeout(); d == nil || d.AsDuration() <= 0 || d.AsDuration() > time.Second {
		t.Errorf("ext_authz grpc_service.timeout = %v, want set and at most 1s", d.AsDuration())
	}
	if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Errorf("ext_authz transport_api_version = %v, want V3", ea.GetTransportApiVersion())
	}
	if ea.GetFailureModeAllow() {
		t.Error("ext_authz failure_mode_allow is true: requests would pass while rolecall is down")
	}
	if ea.GetWithRequestBody() != nil {
		t.Error("ext_authz with_request_body is set: rolecall never reads the body")
	}
	if c := ea.GetStatusOnError().GetCode(); c != 0 && (c < 400 || c == 404) {
		t.Errorf("ext_authz status_on_error = %v, want an error status", c)
	}
	// With allowed_headers set, only the listed headers reach rolecall: the
	// token must be one of them.
	if ah := ea.GetAllowedHeaders(); ah != nil {
		if !slices.ContainsFunc(ah.GetPatterns(), func(p *matcherv3.StringMatcher) bool { return matches(p, "authorization") }) {
			t.Error("ext_authz allowed_headers do not include authorization: rolecall would never see the token")
		}
	}
	if dh := ea.GetDisallowedHeaders(); dh != nil {
		t.Error("ext_authz disallowed_headers is set; list what rolecall needs in allowed_headers instead")
	}

	// The routes send everything to the app.
	var routes int
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			routes++
			if got := r.GetRoute().GetCluster(); got != "app" {
				t.Errorf("route %v goes to cluster %q, want app", r.GetMatch(), got)
			}
		}
	}
	if routes == 0 {
		t.Error("no route to the app")
	}

	// The app.
	if app := clusters["app"]; app == nil {
		t.Error("no cluster app")
	} else if got := clusterAddresses(app); !slices.Equal(got, []string{"127.0.0.1:8081"}) {
		t.Errorf("cluster app endpoints = %q, want [127.0.0.1:8081]", got)
	}

	// rolecall, over HTTP/2.
	rc := clusters["rolecall"]
	if rc == nil {
		t.Fatal("no cluster rolecall")
	}
	if got := clusterAddresses(rc); len(got) != 1 || got[0] != "127.0.0.1:50051" && got[0] != "unix:/run/rolecall/rolecall.sock" {
		t.Errorf("cluster rolecall endpoints = %q, want 127.0.0.1:50051 or the Unix socket", got)
	}
	const hpoName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	hpo := unpack(t, rc.GetTypedExtensionProtocolOptions()[hpoName], &upstreamhttpv3.HttpProtocolOptions{})
	if hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("cluster rolecall does not use HTTP/2 (explicit_http_config.http2_protocol_options): gRPC needs it")
	}
}

// ---------------------------------------------------------------------------
// Kubernetes

type manifest struct {
	namespaces  []*corev1.Namespace
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
}

// loadManifest decodes every document of a Kubernetes example in
// deploy/kubernetes strictly into its API type: an unknown field, a duplicate
// key or an unexpected kind is an error.
func loadManifest(t *testing.T, file string) *manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("kubernetes", file))
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var node yaml.Node
		if err := dec.Decode(&node); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		doc, err := yaml.Marshal(&node)
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := k8syaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		strict := func(apiVersion string, into any) {
			t.Helper()
			if meta.APIVersion != apiVersion {
				t.Fatalf("document %d: %s has apiVersion %q, want %q", i, meta.Kind, meta.APIVersion, apiVersion)
			}
			if err := k8syaml.UnmarshalStrict(doc, into); err != nil {
				t.Fatalf("document %d (%s): %v", i, meta.Kind, err)
			}
		}
		switch meta.Kind {
		case "ConfigMap":
			var cm corev1.ConfigMap
			strict("v1", &cm)
			m.configMaps[cm.Name] = &cm
		case "Secret":
			var s corev1.Secret
			strict("v1", &s)
			m.secrets[s.Name] = &s
		case "Deployment":
			var d appsv1.Deployment
			strict("apps/v1", &d)
			m.deployments = append(m.deployments, &d)
		case "Namespace":
			var n corev1.Namespace
			strict("v1", &n)
			m.namespaces = append(m.namespaces, &n)
		case "Service":
			var svc corev1.Service
			strict("v1", &svc)
			m.services = append(m.services, &svc)
		case "PodDisruptionBudget":
			var pdb policyv1.PodDisruptionBudget
			strict("policy/v1", &pdb)
			m.pdbs = append(m.pdbs, &pdb)
		default:
			t.Fatalf("document %d: unexpected kind %q", i, meta.Kind)
		}
	}
	return m
}

func container(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func mountAt(c *corev1.Container, dir string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if path.Clean(c.VolumeMounts[i].MountPath) == path.Clean(dir) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func volume(spec *corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// portNumber resolves a probe's port, named or numbered, against c's ports.
func portNumber(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// checkRolecallPod checks what every rolecall container of the examples
// keeps, and returns the config its --config names: its volumes exist, it
// runs hardened, it has requests and a memory limit, its probes use the admin
// listener, and its cache is on a writable emptyDir.
func checkRolecallPod(t *testing.T, m *manifest, spec *corev1.PodSpec, rc *corev1.Container) rolecallConfig {
	t.Helper()
	// Every volume a container mounts exists, and every ConfigMap or Secret a
	// volume names is in the manifest.
	for _, c := range spec.Containers {
		for _, vm := range c.VolumeMounts {
			if volume(spec, vm.Name) == nil {
				t.Errorf("container %s mounts volume %q, which is not defined", c.Name, vm.Name)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] == nil {
			t.Errorf("volume %s names ConfigMap %q, which is not in the manifest", v.Name, v.ConfigMap.Name)
		}
		if v.Secret != nil && m.secrets[v.Secret.SecretName] == nil {
			t.Errorf("volume %s names Secret %q, which is not in the manifest", v.Name, v.Secret.SecretName)
		}
	}

	// Non-root, read-only root filesystem, no privilege escalation.
	pod := spec.SecurityContext
	sc := rc.SecurityContext
	if sc == nil {
		t.Fatal("the rolecall container has no securityContext")
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && pod != nil {
		nonRoot = pod.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Error("rolecall does not set runAsNonRoot: true")
	}
	uid := sc.RunAsUser
	if uid == nil && pod != nil {
		uid = pod.RunAsUser
	}
	if uid != nil && *uid == 0 {
		t.Error("rolecall runs as uid 0")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("rolecall does not set readOnlyRootFilesystem: true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("rolecall does not set allowPrivilegeEscalation: false")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("rolecall does not drop ALL capabilities")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod != nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("rolecall does not run with the RuntimeDefault seccomp profile")
	}

	// Requests, and a memory limit (rolecall's Go memory limit follows it).
	req, lim := rc.Resources.Requests, rc.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		t.Errorf("rolecall requests cpu %v and memory %v; want both", req.Cpu(), req.Memory())
	}
	if lim.Memory().IsZero() {
		t.Error("rolecall has no memory limit")
	} else if lim.Memory().Cmp(*req.Memory()) < 0 {
		t.Errorf("rolecall's memory limit %v is below its request %v", lim.Memory(), req.Memory())
	}

	// --config names a file mounted from a ConfigMap in the manifest.
	configPath := flagValue(rc.Args, "--config")
	if configPath == "" {
		t.Fatalf("rolecall's args %q do not use --config", rc.Args)
	}
	if !slices.Contains(rc.Args, "serve") && !slices.Contains(rc.Command, "serve") {
		t.Errorf("rolecall's args %q do not run serve", rc.Args)
	}
	var cfg rolecallConfig
	cm := mountAt(rc, configPath)
	if cm == nil || cm.SubPath == "" {
		t.Fatalf("no file mounted at --config %s", configPath)
	}
	v := volume(spec, cm.Name)
	if v == nil || v.ConfigMap == nil || m.configMaps[v.ConfigMap.Name] == nil {
		t.Fatalf("--config %s is not mounted from a ConfigMap of the manifest", configPath)
	}
	text, ok := m.configMaps[v.ConfigMap.Name].Data[cm.SubPath]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q for --config", v.ConfigMap.Name, cm.SubPath)
	}
	if err := k8syaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("rolecall's config: %v", err)
	}

	// Probes on the admin port: /readyz and /healthz.
	_, adminPort, err := net.SplitHostPort(cfg.Admin.Address)
	if err != nil {
		t.Fatalf("config admin.address %q: %v", cfg.Admin.Address, err)
	}
	if host, _, _ := net.SplitHostPort(cfg.Admin.Address); host != "0.0.0.0" && host != "" {
		t.Errorf("config admin.address %q: the kubelet probes the pod's IP, so it must listen on all addresses", cfg.Admin.Address)
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{
		{"readinessProbe", rc.ReadinessProbe, "/readyz"},
		{"livenessProbe", rc.LivenessProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("rolecall has no HTTP %s", p.what)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("rolecall's %s path = %q, want %q", p.what, p.probe.HTTPGet.Path, p.path)
		}
		if got := portNumber(rc, p.probe.HTTPGet.Port); strconv.Itoa(int(got)) != adminPort {
			t.Errorf("rolecall's %s port %s is %d, want the admin port %s", p.what, p.probe.HTTPGet.Port.String(), got, adminPort)
		}
	}

	// The cache survives container restarts on an emptyDir.
	if cm := mountAt(rc, path.Dir(cfg.Cache.Path)); cm == nil {
		t.Errorf("the directory of cache.path %q is not a mount", cfg.Cache.Path)
	} else if v := volume(spec, cm.Name); v == nil || v.EmptyDir == nil || cm.ReadOnly {
		t.Errorf("cache.path %q is not on a writable emptyDir", cfg.Cache.Path)
	}

	// Secrets are mounted read-only.
	for _, vm := range rc.VolumeMounts {
		if v := volume(spec, vm.Name); v != nil && v.Secret != nil && !vm.ReadOnly {
			t.Errorf("Secret %s is mounted writable at %s", v.Secret.SecretName, vm.MountPath)
		}
	}
	return cfg
}

// flagValue returns the value of flag name ("--name V" or "--name=V") in
// args, "" when it is not there.
func flagValue(args []string, name string) string {
	v := ""
	for i, a := range args {
		if a == name && i+1 < len(args) {
			v = args[i+1]
		} else if after, ok := strings.CutPrefix(a, name+"="); ok {
			v = after
		}
	}
	return v
}

// fileSource returns the volume that the file at p in c comes from, checking
// that it is mounted read-only; nil (and an error) when no mount holds p.
func fileSource(t *testing.T, spec *corev1.PodSpec, c *corev1.Container, what, p string) *corev1.Volume {
	t.Helper()
	for i := range c.VolumeMounts {
		vm := &c.VolumeMounts[i]
		mp := path.Clean(vm.MountPath)
		inside := vm.SubPath == "" && strings.HasPrefix(path.Clean(p), mp+"/")
		if !inside && (vm.SubPath == "" || mp != path.Clean(p)) {
			continue
		}
		if !vm.ReadOnly {
			t.Errorf("%s %s: the volume %s at %s is not mounted read-only", what, p, vm.Name, vm.MountPath)
		}
		v := volume(spec, vm.Name)
		if v == nil {
			t.Errorf("%s %s: no volume %s", what, p, vm.Name)
		}
		return v
	}
	t.Errorf("%s %s is on no volume of container %s", what, p, c.Name)
	return nil
}

// volumeKey is the key of the ConfigMap or Secret behind the file at p of a
// mount, for a volume mounted whole (no items).
func volumeKey(c *corev1.Container, p string) string {
	for _, vm := range c.VolumeMounts {
		if vm.SubPath != "" && path.Clean(vm.MountPath) == path.Clean(p) {
			return vm.SubPath
		}
		if rest, ok := strings.CutPrefix(path.Clean(p), path.Clean(vm.MountPath)+"/"); ok && vm.SubPath == "" {
			return rest
		}
	}
	return ""
}

// rolecallConfig reads the keys of rolecall's config that the manifest must
// agree with; config/deploy_test.go and cmd/rolecall check the config itself.
type rolecallConfig struct {
	GRPC struct {
		Address    string `json:"address"`
		UnixSocket string `json:"unix_socket"`
	} `json:"grpc"`
	Admin struct {
		Address string `json:"address"`
	} `json:"admin"`
	Cache struct {
		Path string `json:"path"`
	} `json:"cache"`
	Policy struct {
		Upstream string `json:"upstream"`
		HTTP     struct {
			BearerTokenFile string `json:"bearer_token_file"`
			CAFile          string `json:"ca_file"`
		} `json:"http"`
	} `json:"policy"`
}

// The service with rolecall as its sidecar, in both variants: policy from a
// ConfigMap (rolecall-sidecar.yaml) and from the hub (sidecar-from-hub.yaml).
func TestKubernetesSidecar(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"rolecall-sidecar.yaml", "sidecar-from-hub.yaml"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			m := loadManifest(t, file)
			checkSidecar(t, m)
		})
	}
}

// checkSidecar checks the one Deployment of m, an app with rolecall beside
// it, and returns its rolecall container and config.
func checkSidecar(t *testing.T, m *manifest) (*corev1.PodSpec, *corev1.Container, rolecallConfig) {
	t.Helper()
	if len(m.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(m.deployments))
	}
	d := m.deployments[0]
	spec := &d.Spec.Template.Spec
	if len(spec.Containers) != 2 {
		t.Fatalf("%d containers, want the app and rolecall", len(spec.Containers))
	}
	rc := container(t, spec, "rolecall")
	app := &spec.Containers[0]
	if app == rc {
		app = &spec.Containers[1]
	}
	cfg := checkRolecallPod(t, m, spec, rc)

	// The socket is created 0660: both containers need its group.
	if pod := spec.SecurityContext; pod == nil || pod.FSGroup == nil {
		t.Error("the pod sets no fsGroup, so the app cannot use rolecall's 0660 socket")
	}

	// The decision API is only on the socket, which sits on an emptyDir
	// mounted at /run/rolecall in both containers.
	const socketDir = "/run/rolecall"
	if cfg.GRPC.Address != "" {
		t.Errorf("config grpc.address = %q, want \"\": the decision API only on the socket", cfg.GRPC.Address)
	}
	if path.Dir(cfg.GRPC.UnixSocket) != socketDir {
		t.Errorf("config grpc.unix_socket = %q, want a socket in %s", cfg.GRPC.UnixSocket, socketDir)
	}
	rcMount, appMount := mountAt(rc, socketDir), mountAt(app, socketDir)
	switch {
	case rcMount == nil || appMount == nil:
		t.Errorf("%s is not mounted in both containers", socketDir)
	case rcMount.Name != appMount.Name:
		t.Errorf("the containers mount different volumes (%s, %s) at %s", rcMount.Name, appMount.Name, socketDir)
	case rcMount.ReadOnly || rcMount.SubPath != "" || appMount.SubPath != "":
		t.Errorf("%s must be mounted whole and writable", socketDir)
	default:
		if v := volume(spec, rcMount.Name); v == nil || v.EmptyDir == nil {
			t.Errorf("volume %s at %s is not an emptyDir", rcMount.Name, socketDir)
		}
	}

	// The app dials that socket.
	addr := ""
	for _, e := range app.Env {
		if e.Name == "ROLECALL_ADDR" {
			addr = e.Value
		}
	}
	if want := "unix://" + cfg.GRPC.UnixSocket; addr != want {
		t.Errorf("app container %s: ROLECALL_ADDR = %q, want %q", app.Name, addr, want)
	}
	return spec, rc, cfg
}

// hub is the Deployment, Service and PodDisruptionBudget of hub.yaml, and
// the publish port its rolecall container listens on.
type hub struct {
	m           *manifest
	deployment  *appsv1.Deployment
	service     *corev1.Service
	publishPort int32
}

// loadHub decodes hub.yaml and finds its parts.
func loadHub(t *testing.T) *hub {
	t.Helper()
	m := loadManifest(t, "hub.yaml")
	if len(m.deployments) != 1 || len(m.services) != 1 || len(m.pdbs) != 1 {
		t.Fatalf("hub.yaml has %d Deployments, %d Services and %d PodDisruptionBudgets, want one of each",
			len(m.deployments), len(m.services), len(m.pdbs))
	}
	h := &hub{m: m, deployment: m.deployments[0], service: m.services[0]}
	rc := container(t, &h.deployment.Spec.Template.Spec, "rolecall")
	addr := flagValue(rc.Args, "--publish-addr")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("the hub's --publish-addr %q: %v", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("the hub's --publish-addr %q: %v", addr, err)
	}
	h.publishPort = int32(n)
	return h
}

func TestKubernetesHub(t *testing.T) {
	t.Parallel()
	h := loadHub(t)
	m, d := h.m, h.deployment
	spec := &d.Spec.Template.Spec
	rc := container(t, spec, "rolecall")
	cfg := checkRolecallPod(t, m, spec, rc)

	// Two replicas, never both taken by a voluntary disruption, and spread
	// across nodes.
	if d.Spec.Replicas == nil {
		t.Error("the hub sets no replicas (1 by default), want 2")
	} else if *d.Spec.Replicas != 2 {
		t.Errorf("the hub has %d replicas, want 2", *d.Spec.Replicas)
	}
	podLabels := d.Spec.Template.Labels
	selects := func(sel map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	pdb := m.pdbs[0]
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("the PodDisruptionBudget has minAvailable %v, maxUnavailable %v; want minAvailable 1", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
	}
	if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels) || pdb.Namespace != d.Namespace {
		t.Errorf("the PodDisruptionBudget (namespace %q, selector %v) does not select the hub's pods", pdb.Namespace, pdb.Spec.Selector)
	}
	spread := false
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		terms := a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
		for _, term := range terms {
			if term.TopologyKey == "kubernetes.io/hostname" && term.LabelSelector != nil && selects(term.LabelSelector.MatchLabels) {
				spread = true
			}
		}
	}
	if !spread {
		t.Error("the hub has no pod anti-affinity on kubernetes.io/hostname selecting its own pods")
	}

	// Everything in one namespace, which the manifest creates.
	if len(m.namespaces) != 1 || d.Namespace != m.namespaces[0].Name || h.service.Namespace != d.Namespace {
		t.Errorf("namespaces: manifest %v, Deployment %q, Service %q; want one, used by both", m.namespaces, d.Namespace, h.service.Namespace)
	}
	for name, cm := range m.configMaps {
		if cm.Namespace != d.Namespace {
			t.Errorf("ConfigMap %s is in namespace %q, not the hub's %q", name, cm.Namespace, d.Namespace)
		}
	}
	for name, s := range m.secrets {
		if s.Namespace != d.Namespace {
			t.Errorf("Secret %s is in namespace %q, not the hub's %q", name, s.Namespace, d.Namespace)
		}
	}

	// The publish listener: on all addresses (other pods fetch from it), so
	// with TLS and a bearer token or client CA, each from a Secret; bundles
	// signed with a key from a Secret.
	addr := flagValue(rc.Args, "--publish-addr")
	if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" && host != "" {
		t.Errorf("--publish-addr %q: other pods fetch from the hub, so it must listen on all addresses", addr)
	}
	cp := false
	for _, p := range rc.Ports {
		if p.ContainerPort == h.publishPort && p.Name != "" {
			cp = true
		}
	}
	if !cp {
		t.Errorf("the rolecall container declares no named port %d for --publish-addr", h.publishPort)
	}
	token, clientCA := flagValue(rc.Args, "--publish-token-file"), flagValue(rc.Args, "--publish-tls-client-ca")
	if token == "" && clientCA == "" {
		t.Error("the publish listener has neither --publish-token-file nor --publish-tls-client-ca: rolecall refuses a non-loopback publish address without one")
	}
	for _, flag := range []string{"--publish-tls-cert", "--publish-tls-key", "--publish-token-file", "--publish-sign-key"} {
		p := flagValue(rc.Args, flag)
		if p == "" {
			t.Errorf("the hub's args %q have no %s", rc.Args, flag)
			continue
		}
		v := fileSource(t, spec, rc, flag, p)
		if v == nil {
			continue
		}
		if v.Secret == nil {
			t.Errorf("%s %s is not from a Secret (volume %s)", flag, p, v.Name)
			continue
		}
		if s := m.secrets[v.Secret.SecretName]; s != nil {
			key := volumeKey(rc, p)
			if _, ok := s.StringData[key]; !ok {
				if _, ok := s.Data[key]; !ok {
					t.Errorf("%s %s: Secret %s has no key %q", flag, p, s.Name, key)
				}
			}
		}
	}
	if m := volume(spec, "signing"); m != nil && m.Secret != nil && m.Secret.DefaultMode != nil && *m.Secret.DefaultMode&0o004 != 0 {
		t.Errorf("the signing key is world-readable (defaultMode %o)", *m.Secret.DefaultMode)
	}

	// The hub reads a source, not a file of its own image.
	if cfg.Policy.Upstream == "" {
		t.Error("the hub's config names no policy.upstream")
	}
	if cfg.GRPC.Address != "" {
		if host, _, _ := net.SplitHostPort(cfg.GRPC.Address); host != "127.0.0.1" && host != "::1" && host != "localhost" {
			t.Errorf("the hub's grpc.address %q is not loopback: it publishes policies, it does not answer other pods' checks", cfg.GRPC.Address)
		}
	}

	// A ClusterIP Service whose port leads to the publish listener.
	svc := h.service
	if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("the hub's Service is a %s, want ClusterIP", svc.Spec.Type)
	}
	if !selects(svc.Spec.Selector) {
		t.Errorf("the Service's selector %v does not select the hub's pods %v", svc.Spec.Selector, podLabels)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("the hub's Service has %d ports, want 1 (publish)", len(svc.Spec.Ports))
	}
	if got := portNumber(rc, svc.Spec.Ports[0].TargetPort); got != h.publishPort {
		t.Errorf("the Service's targetPort %s is %d, want the publish port %d", svc.Spec.Ports[0].TargetPort.String(), got, h.publishPort)
	}
}

func TestKubernetesSidecarFromHub(t *testing.T) {
	t.Parallel()
	h := loadHub(t)
	m := loadManifest(t, "sidecar-from-hub.yaml")
	spec, rc, cfg := checkSidecar(t, m)

	// The upstream is the hub's Service, on its port, at /v1/policy, over
	// HTTPS: https://<service>.<namespace>.svc:<port>/v1/policy.
	upstream := cfg.Policy.Upstream
	if v := flagValue(rc.Args, "--upstream"); v != "" {
		upstream = v
	}
	svc := h.service
	want := fmt.Sprintf("https://%s.%s.svc:%d/v1/policy", svc.Name, svc.Namespace, svc.Spec.Ports[0].Port)
	if upstream != want {
		t.Errorf("the sidecar's upstream is %q, want the hub's Service %s", upstream, want)
	}

	// The token from a Secret, the CA and the public key from a ConfigMap,
	// all mounted read-only, and every file a key the object has.
	for _, f := range []struct{ what, path, kind string }{
		{"policy.http.bearer_token_file", cfg.Policy.HTTP.BearerTokenFile, "Secret"},
		{"policy.http.ca_file", cfg.Policy.HTTP.CAFile, "ConfigMap"},
		{"--policy-public-key", flagValue(rc.Args, "--policy-public-key"), "ConfigMap"},
	} {
		if f.path == "" {
			t.Errorf("the sidecar sets no %s", f.what)
			continue
		}
		v := fileSource(t, spec, rc, f.what, f.path)
		if v == nil {
			continue
		}
		key := volumeKey(rc, f.path)
		switch {
		case f.kind == "Secret" && v.Secret != nil:
			s := m.secrets[v.Secret.SecretName]
			if _, ok := s.StringData[key]; !ok {
				if _, ok := s.Data[key]; !ok {
					t.Errorf("%s %s: Secret %s has no key %q", f.what, f.path, s.Name, key)
				}
			}
		case f.kind == "ConfigMap" && v.ConfigMap != nil:
			if _, ok := m.configMaps[v.ConfigMap.Name].Data[key]; !ok {
				t.Errorf("%s %s: ConfigMap %s has no key %q", f.what, f.path, v.ConfigMap.Name, key)
			}
		default:
			t.Errorf("%s %s is not from a %s (volume %s)", f.what, f.path, f.kind, v.Name)
		}
	}

	// The sidecar presents the hub's token: the two Secrets have the same
	// key, so copying one to the other is all it takes.
	hubToken := volumeKey(container(t, &h.deployment.Spec.Template.Spec, "rolecall"),
		flagValue(container(t, &h.deployment.Spec.Template.Spec, "rolecall").Args, "--publish-token-file"))
	if key := volumeKey(rc, cfg.Policy.HTTP.BearerTokenFile); key != hubToken {
		t.Errorf("the sidecar reads the token from key %q, the hub from key %q", key, hubToken)
	}
}

// ---------------------------------------------------------------------------
// nginx

// directive is one nginx directive; block holds the directives of its {...}.
type directive struct {
	name  string
	args  []string
	block []*directive
	line  int
}

// parseNginx reads nginx's configuration syntax: directives of words and
// quoted strings ending in ';' or a block, and '#' comments.
func parseNginx(src string) ([]*directive, error) {
	type token struct {
		s     string
		quote bool
		line  int
	}
	var toks []token
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			toks = append(toks, token{s: string(c), line: line})
			i++
		case c == '"' || c == '\'':
			j := i + 1
			var sb strings.Builder
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && j+1 < len(src) {
					j++
				}
				if src[j] == '\n' {
					line++
				}
				sb.WriteByte(src[j])
			}
			if j == len(src) {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			toks = append(toks, token{s: sb.String(), quote: true, line: line})
			i = j + 1
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n;{}#\"'", rune(src[j])) {
				j++
			}
			toks = append(toks, token{s: src[i:j], line: line})
			i = j
		}
	}
	var parse func(depth int) ([]*directive, error)
	pos := 0
	parse = func(depth int) ([]*directive, error) {
		var out []*directive
		for pos < len(toks) {
			tk := toks[pos]
			if tk.s == "}" && !tk.quote {
				if depth == 0 {
					return nil, fmt.Errorf("line %d: unexpected }", tk.line)
				}
				pos++
				return out, nil
			}
			if !tk.quote && (tk.s == ";" || tk.s == "{") {
				return nil, fmt.Errorf("line %d: unexpected %s", tk.line, tk.s)
			}
			d := &directive{name: tk.s, line: tk.line}
			pos++
			for {
				if pos == len(toks) {
					return nil, fmt.Errorf("line %d: %s is not terminated", d.line, d.name)
				}
				tk := toks[pos]
				pos++
				if !tk.quote && tk.s == ";" {
					break
				}
				if !tk.quote && tk.s == "{" {
					b, err := parse(depth + 1)
					if err != nil {
						return nil, err
					}
					if b == nil {
						b = []*directive{}
					}
					d.block = b
					break
				}
				if !tk.quote && tk.s == "}" {
					return nil, fmt.Errorf("line %d: unexpected }", tk.line)
				}
				d.args = append(d.args, tk.s)
			}
			out = append(out, d)
		}
		if depth != 0 {
			return nil, errors.New("unclosed block at end of file")
		}
		return out, nil
	}
	return parse(0)
}

func find(ds []*directive, name string, args ...string) []*directive {
	var out []*directive
	for _, d := range ds {
		if d.name == name && (args == nil || slices.Equal(d.args, args)) {
			out = append(out, d)
		}
	}
	return out
}

// one returns the single directive name with exactly args in ds.
func one(t *testing.T, where string, ds []*directive, name string, args ...string) *directive {
	t.Helper()
	got := find(ds, name, args...)
	if len(got) != 1 {
		t.Errorf("%s: %d of %q %q, want 1", where, len(got), name, args)
		return nil
	}
	return got[0]
}

func TestNginxConf(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	top, err := parseNginx(string(data))
	if err != nil {
		t.Fatalf("nginx.conf: %v", err)
	}

	// Runnable by any user under any prefix: no "user", relative paths.
	if find(top, "user") != nil {
		t.Error("nginx.conf sets user: it must run unprivileged")
	}
	if one(t, "main", top, "events") == nil {
		t.Fatal("no events block")
	}
	http := one(t, "main", top, "http")
	if http == nil {
		t.FailNow()
	}
	relative := []string{"pid", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path",
		"fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"}
	var walk func(ds []*directive)
	seen := map[string]bool{}
	walk = func(ds []*directive) {
		for _, d := range ds {
			if slices.Contains(relative, d.name) {
				seen[d.name] = true
				if len(d.args) == 0 || strings.HasPrefix(d.args[0], "/") {
					t.Errorf("line %d: %s %q must be relative to the prefix (-p)", d.line, d.name, d.args)
				}
			}
			walk(d.block)
		}
	}
	walk(top)
	for _, name := range relative {
		if !seen[name] {
			t.Errorf("nginx.conf does not set %s: nginx would use its built-in path outside the prefix", name)
		}
	}

	servers := find(http.block, "server")
	if len(servers) != 1 {
		t.Fatalf("%d server blocks, want 1", len(servers))
	}
	srv := servers[0].block
	one(t, "server", srv, "listen", "127.0.0.1:8080")

	// location /: auth_request, identity headers passed on, proxied to the app.
	var root *directive
	if root = one(t, "server", srv, "location", "/"); root == nil {
		t.FailNow()
	}
	ar := one(t, "location /", root.block, "auth_request")
	if ar == nil || len(ar.args) != 1 {
		t.FailNow()
	}
	authURI := ar.args[0]
	for _, h := range identityHeaders {
		v := "$rolecall_" + strings.ToLower(strings.TrimPrefix(h, "X-Rolecall-"))
		upstream := "$upstream_http_" + strings.ReplaceAll(strings.ToLower(h), "-", "_")
		one(t, "location /", root.block, "auth_request_set", v, upstream)
		one(t, "location /", root.block, "proxy_set_header", h, v)
	}
	one(t, "location /", root.block, "proxy_pass", "http://127.0.0.1:8081")

	// The auth location: internal, headers only, to rolecall's /v1/authz.
	auth := one(t, "server", srv, "location", "=", authURI)
	if auth == nil {
		t.Fatalf("auth_request %s names no exact location", authURI)
	}
	where := "location = " + authURI
	one(t, where, auth.block, "internal")
	one(t, where, auth.block, "proxy_pass", "http://127.0.0.1:50053/v1/authz")
	one(t, where, auth.block, "proxy_pass_request_body", "off")
	one(t, where, auth.block, "proxy_set_header", "Content-Length", "")
	one(t, where, auth.block, "proxy_set_header", "X-Original-URI", "$request_uri")
	one(t, where, auth.block, "proxy_set_header", "X-Original-Method", "$request_method")
	one(t, where, auth.block, "proxy_set_header", "Authorization", "$http_authorization")
	if m := find(auth.block, "proxy_method"); m != nil && (len(m[0].args) != 1 || m[0].args[0] != "GET" && m[0].args[0] != "POST") {
		t.Errorf("%s: proxy_method %q; rolecall's /v1/authz takes GET or POST", where, m[0].args)
	}

	// Run nginx's own check when nginx is installed.
	t.Run("nginx -t", func(t *testing.T) {
		nginx, err := exec.LookPath("nginx")
		if err != nil {
			t.Skip("nginx is not on PATH; skipping `nginx -t` (apt-get install nginx-light to run it)")
		}
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-e", "stderr", "-p", dir + "/", "-c", "nginx.conf", "-t", "-q"}
		out, err := exec.Command(nginx, args...).CombinedOutput()
		if err != nil && bytes.Contains(out, []byte(`invalid option: "e"`)) {
			// nginx before 1.19.5 has no -e.
			out, err = exec.Command(nginx, args[2:]...).CombinedOutput()
		}
		if err != nil {
			t.Fatalf("nginx %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
}

// ---------------------------------------------------------------------------
// Dockerfile

type instruction struct {
	cmd  string // upper case
	args string
	line int
}

type stage struct {
	from, name string
	body       []instruction
}

// parseDockerfile splits a Dockerfile into its stages, joining continued lines.
func parseDockerfile(t *testing.T, data []byte) []stage {
	t.Helper()
	var stages []stage
	sc := bufio.NewScanner(bytes.NewReader(data))
	var cur strings.Builder
	start, n := 0, 0
	fromRe := regexp.MustCompile(`(?i)^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$`)
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		} else if strings.HasPrefix(l, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		text := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			m := fromRe.FindStringSubmatch(in.args)
			if m == nil {
				t.Fatalf("Dockerfile line %d: cannot read FROM %s", in.line, in.args)
			}
			stages = append(stages, stage{from: m[1], name: m[2]})
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile line %d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() != 0 {
		t.Fatal("Dockerfile ends inside a continued line")
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, data)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	final := stages[len(stages)-1]

	// A build stage compiles rolecall without cgo: a static binary.
	var build *stage
	for i := range stages[:len(stages)-1] {
		cgoOff := false
		for _, in := range stages[i].body {
			if in.cmd == "ENV" && regexp.MustCompile(`\bCGO_ENABLED[= ]0\b`).MatchString(in.args) {
				cgoOff = true
			}
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				if cgoOff || regexp.MustCompile(`\bCGO_ENABLED=0\s`).MatchString(in.args) {
					build = &stages[i]
				} else {
					t.Errorf("Dockerfile line %d: go build without CGO_ENABLED=0", in.line)
				}
			}
		}
	}
	if build == nil {
		t.Fatal("no build stage runs `CGO_ENABLED=0 go build`")
	}

	// The final stage takes the binary from the build stage and runs it as a
	// non-root user.
	copied := false
	user := ""
	for _, in := range final.body {
		if in.cmd == "COPY" && build.name != "" && strings.Contains(in.args, "--from="+build.name+" ") {
			copied = true
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			t.Errorf("Dockerfile line %d: the final stage builds; build in an earlier stage", in.line)
		}
		if in.cmd == "USER" {
			user = in.args
		}
	}
	if !copied {
		t.Errorf("the final stage (FROM %s) copies nothing from the build stage %q", final.from, build.name)
	}
	name, _, _ := strings.Cut(user, ":")
	switch name {
	case "":
		t.Errorf("the final stage (FROM %s) sets no USER: it would run as the base image's user", final.from)
	case "0", "root":
		t.Errorf("the final stage runs as USER %s", user)
	}
}
