// Package kubernetes holds the Kubernetes example's manifests and the test
// that checks them. It is its own Go module so that renewkit's go.mod does
// not depend on k8s.io.
package kubernetes

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// object is a decoded manifest with where it came from.
type object struct {
	where string
	obj   any
}

// newObject returns the typed object for a manifest's apiVersion and kind.
func newObject(tm metav1.TypeMeta) (any, error) {
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	}
	return nil, fmt.Errorf("apiVersion %q kind %q: not a type this test knows", tm.APIVersion, tm.Kind)
}

// decodeStrict decodes one YAML document into its k8s.io/api type: an
// unknown or duplicate field is an error.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	obj, err := newObject(tm)
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// documents splits a YAML stream on its "---" lines, dropping empty ones.
func documents(data []byte) [][]byte {
	var out [][]byte
	for d := range bytes.SplitSeq(data, []byte("\n---")) {
		if len(bytes.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAll(d, nil))) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// load decodes every manifest of this directory strictly.
func load(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var objs []object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range documents(data) {
			where := fmt.Sprintf("%s document %d", f, i+1)
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			objs = append(objs, object{where, obj})
		}
	}
	return objs
}

func find[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestStrictDecodingCatchesTypos makes sure the decoding this test relies
// on rejects what a typo produces.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelt field":  "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      terminationGracePeriodSecond: 30\n",
		"field misplaced": "apiVersion: v1\nkind: Service\nspec:\n  ports:\n    - port: 80\n      readinessProbe: {}\n",
		"duplicate field": "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: x\ndata:\n  b: y\n",
		"wrong type":      "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: one\n",
		"unknown kind":    "apiVersion: v1\nkind: Pood\n",
	} {
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestManifests decodes every manifest strictly and checks that they fit
// together and fit renew-certificates -serve.
func TestManifests(t *testing.T) {
	objs := load(t)
	deps := find[*appsv1.Deployment](objs)
	if len(deps) != 1 {
		t.Fatalf("%d Deployments, want 1", len(deps))
	}
	d := deps[0]
	spec := d.Spec.Template.Spec
	cms := map[string]*corev1.ConfigMap{}
	for _, cm := range find[*corev1.ConfigMap](objs) {
		cms[cm.Name] = cm
	}
	pvcs := map[string]bool{}
	for _, p := range find[*corev1.PersistentVolumeClaim](objs) {
		pvcs[p.Name] = true
	}

	// Every volume's source exists, and every mount names a volume.
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
		switch {
		case v.ConfigMap != nil && cms[v.ConfigMap.Name] == nil:
			t.Errorf("volume %s: no ConfigMap %q", v.Name, v.ConfigMap.Name)
		case v.PersistentVolumeClaim != nil && !pvcs[v.PersistentVolumeClaim.ClaimName]:
			t.Errorf("volume %s: no PersistentVolumeClaim %q", v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	if !isTrue(spec.SecurityContext.RunAsNonRoot) {
		t.Error("pod: runAsNonRoot is not set")
	}
	var renewer *corev1.Container
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for _, m := range c.VolumeMounts {
			v, ok := vols[m.Name]
			if !ok {
				t.Errorf("container %s: mount of unknown volume %q", c.Name, m.Name)
			}
			if v.ConfigMap != nil && m.SubPath != "" && cms[v.ConfigMap.Name] != nil {
				if _, ok := cms[v.ConfigMap.Name].Data[m.SubPath]; !ok {
					t.Errorf("container %s: ConfigMap %s has no key %q", c.Name, v.ConfigMap.Name, m.SubPath)
				}
			}
		}
		sc := c.SecurityContext
		if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 || !isFalse(sc.AllowPrivilegeEscalation) || !isTrue(sc.ReadOnlyRootFilesystem) {
			t.Errorf("container %s: want a non-root user, no privilege escalation and a read-only root", c.Name)
		}
		if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("container %s: want a memory limit and a CPU request", c.Name)
		}
		if c.Name == "renewer" {
			renewer = c
		}
	}
	if renewer == nil {
		t.Fatal("no container named renewer")
	}
	if !slices.Contains(renewer.Args, "-serve") {
		t.Errorf("renewer args %q lack -serve", renewer.Args)
	}

	// The renewer's configuration: what its probes and grace period rely on.
	cm := cms["renewkit-config"]
	if cm == nil {
		t.Fatal("no ConfigMap renewkit-config")
	}
	conf := cm.Data["config.toml"]
	listen := tomlString(t, conf, "listen", "serve")
	grace, err := time.ParseDuration(tomlString(t, conf, "grace", "serve"))
	if err != nil {
		t.Fatalf("serve.grace: %v", err)
	}
	if !strings.HasPrefix(listen, ":") {
		t.Errorf("serve.listen %q: the kubelet probes the pod's address, not loopback", listen)
	}
	port := containerPort(t, renewer, "metrics")
	if fmt.Sprint(":", port) != listen {
		t.Errorf("renewer port %d is not serve.listen %q", port, listen)
	}
	for probe, path := range map[*corev1.Probe]string{renewer.LivenessProbe: "/healthz", renewer.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "metrics" {
			t.Errorf("renewer: want an HTTP probe of %s on port metrics, have %+v", path, probe)
		}
	}
	// SIGTERM reaches the renewer at once (it has no preStop) and it exits
	// within serve.grace; the other containers' preStop comes first.
	tgp := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if renewer.Lifecycle != nil && renewer.Lifecycle.PreStop != nil {
		t.Error("renewer: a preStop only delays its SIGTERM")
	}
	if grace+5*time.Second > tgp {
		t.Errorf("serve.grace %v leaves under 5 s of terminationGracePeriodSeconds %v", grace, tgp)
	}
	for _, c := range spec.Containers {
		if l := c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
			if s := time.Duration(l.PreStop.Sleep.Seconds) * time.Second; s+10*time.Second > tgp {
				t.Errorf("container %s: preStop sleep %v leaves nginx under 10 s to drain", c.Name, s)
			}
		}
	}

	// The Service's target ports exist.
	for _, svc := range find[*corev1.Service](objs) {
		for _, p := range svc.Spec.Ports {
			found := false
			for _, c := range spec.Containers {
				for _, cp := range c.Ports {
					found = found || cp.Name == p.TargetPort.String()
				}
			}
			if !found {
				t.Errorf("service %s: target port %s is no container's", svc.Name, p.TargetPort.String())
			}
		}
		if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("service %s selects no pod of the Deployment", svc.Name)
		}
	}
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Error("the Deployment's selector does not match its pods")
	}

	// Every image is pinned: a version (x.y.z) or a digest, never :latest
	// or no tag at all (which means :latest).
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if !pinnedImage.MatchString(c.Image) {
			t.Errorf("container %s: image %q is not pinned to a version (NAME:X.Y.Z…) or a digest (NAME@sha256:…)", c.Name, c.Image)
		}
	}

	checkNetworkPolicy(t, objs, d, spec)
}

// pinnedImage matches an image reference with a digest, or with a tag that
// starts with a full version (1.29.3-alpine, v0.1.0).
var pinnedImage = regexp.MustCompile(`^[a-z0-9./_-]+(?::[0-9]+)?/?[a-z0-9./_-]*(@sha256:[0-9a-f]{64}|:v?[0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9._-]*)$`)

// checkNetworkPolicy: a NetworkPolicy selects the pod and restricts its
// ingress; the renewer's port (metrics: /metrics, /readyz) is reachable only
// from named peers, while the Service's target ports stay open.
func checkNetworkPolicy(t *testing.T, objs []object, d *appsv1.Deployment, spec corev1.PodSpec) {
	t.Helper()
	var np *networkingv1.NetworkPolicy
	for _, p := range find[*networkingv1.NetworkPolicy](objs) {
		if selects(p.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
			np = p
		}
	}
	if np == nil {
		t.Fatal("no NetworkPolicy selects the Deployment's pods")
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("NetworkPolicy %s does not restrict Ingress", np.Name)
	}
	// Which ports each rule opens, and to whom.
	portNumber := map[string]int32{}
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			portNumber[p.Name] = p.ContainerPort
		}
	}
	openToAll := map[int32]bool{}
	restricted := map[int32]bool{}
	for i, r := range np.Spec.Ingress {
		if len(r.Ports) == 0 {
			t.Errorf("NetworkPolicy %s: ingress rule %d opens every port", np.Name, i)
		}
		for _, p := range r.Ports {
			n := p.Port.IntVal
			if p.Port.StrVal != "" {
				var ok bool
				if n, ok = portNumber[p.Port.StrVal]; !ok {
					t.Errorf("NetworkPolicy %s: port %q is no container's", np.Name, p.Port.StrVal)
				}
			}
			if len(r.From) == 0 {
				openToAll[n] = true
			} else {
				restricted[n] = true
			}
		}
		for _, f := range r.From {
			if f.IPBlock == nil && f.NamespaceSelector == nil && f.PodSelector == nil {
				t.Errorf("NetworkPolicy %s: ingress rule %d has an empty peer (everyone)", np.Name, i)
			}
		}
	}
	metrics := portNumber["metrics"]
	if openToAll[metrics] || !restricted[metrics] {
		t.Errorf("NetworkPolicy %s: the renewer's port %d must be open to named peers only (open to all: %v, to some: %v)", np.Name, metrics, openToAll[metrics], restricted[metrics])
	}
	for _, name := range []string{"http", "https"} {
		if !openToAll[portNumber[name]] {
			t.Errorf("NetworkPolicy %s: nginx's port %s is not open to clients", np.Name, name)
		}
	}
}

// TestRenewerConfigParses runs the real program's configuration check on
// the ConfigMap's config.toml (a dry run: nothing is ordered; the CA's
// directory is fetched from a loopback stand-in).
func TestRenewerConfigParses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds renew-certificates")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	cm := find[*corev1.ConfigMap](load(t))
	var conf string
	for _, c := range cm {
		if c.Name == "renewkit-config" {
			conf = c.Data["config.toml"]
		}
	}
	dir := t.TempDir()
	// The dry run checks that the DNS provider's credentials are there: put
	// a token where the Secret volume would be, under the test's directory.
	const secretPath = "/run/secrets/renewkit-dns/token"
	if !strings.Contains(conf, secretPath) {
		t.Fatalf("config.toml does not read the DNS token from %s, where the Deployment mounts the Secret", secretPath)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf = strings.ReplaceAll(conf, secretPath, token)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// The dry run fetches the CA's directory once: from a loopback stand-in
	// for the configured CA (no test contacts a real host).
	dirSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"newNonce": "", "newAccount": "", "newOrder": ""}`)
	}))
	defer dirSrv.Close()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: dirSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "run", ".", "-config", path, "-dry-run",
		"-server", dirSrv.URL+"/directory", "-ca-file", caFile,
		"-root", filepath.Join(dir, "root"), "-account-dir", filepath.Join(dir, "acme"))
	cmd.Dir = filepath.Join("..", "..", "cmd", "renew-certificates")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("renew-certificates -dry-run on the ConfigMap's config.toml: %v\n%s", err, out)
	}
}

// tomlString finds key = "value" in [table] of a TOML document (enough for
// the example's flat tables).
func tomlString(t *testing.T, doc, key, table string) string {
	t.Helper()
	in := false
	re := regexp.MustCompile(`^\s*` + regexp.QuoteMeta(key) + `\s*=\s*"([^"]*)"`)
	for l := range strings.SplitSeq(doc, "\n") {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "[") {
			in = s == "["+table+"]"
			continue
		}
		if m := re.FindStringSubmatch(l); in && m != nil {
			return m[1]
		}
	}
	t.Fatalf("config.toml: no %s.%s", table, key)
	return ""
}

func containerPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s: no port %q", c.Name, name)
	return 0
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }
