// Package kubernetes holds the Kubernetes example's manifests and the test
// that checks them. It is its own Go module so that renewkit's go.mod does
// not depend on k8s.io.
package kubernetes

import (
	"bytes"
	"fmt"
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
}

// TestRenewerConfigParses runs the real program's configuration check on
// the ConfigMap's config.toml (a dry run: no CA is contacted).
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
	cmd := exec.Command(goBin, "run", ".", "-config", path, "-dry-run",
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
