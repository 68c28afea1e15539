package metrics

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/renewkit/renewkit/renew"
)

// parseTextfile reads path back with the text-format parser, with the
// legacy (pre-UTF-8) name rules older node_exporters enforce.
func parseTextfile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse %s: %v\n%s", path, err, data)
	}
	return mfs
}

func newRegistry(t *testing.T) (*prometheus.Registry, *Collector) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	c := newCollector(fixedClock())
	reg.MustRegister(c)
	return reg, c
}

func TestWriteTextfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "renewkit.prom")
	reg, c := newRegistry(t)
	c.Track(renew.Certificate{Name: "web", Domains: []string{"example.com", "www.example.com"}})
	c.Finished(renewed())

	if err := WriteTextfile(path, reg); err != nil {
		t.Fatal(err)
	}
	mfs := parseTextfile(t, path)
	var names []string
	for n := range mfs {
		names = append(names, n)
	}
	slices.Sort(names)
	want := slices.Clone(allNames)
	want = slices.DeleteFunc(want, func(n string) bool {
		// renewed() has no backoff in force, and is not in fleet mode.
		return n == "renewkit_renewal_retry_not_before_timestamp_seconds" || n == "renewkit_fleet_reachable"
	})
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("families %q, want %q", names, want)
	}
	na := mfs["renewkit_certificate_not_after_timestamp_seconds"]
	if got := na.GetMetric()[0].GetGauge().GetValue(); got != float64(tNotAfter.Unix()) {
		t.Errorf("not_after = %v, want %v", got, tNotAfter.Unix())
	}
	if na.GetHelp() == "" || na.GetType() != dto.MetricType_GAUGE {
		t.Errorf("not_after: help %q, type %v", na.GetHelp(), na.GetType())
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.TimestampMs != nil {
				t.Errorf("%s has a timestamp; node_exporter refuses those", mf.GetName())
			}
		}
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 (node_exporter runs as another user)", info.Mode().Perm())
	}
	assertOnly(t, dir, "renewkit.prom")

	// A second run replaces the file whole.
	c.Finished(renew.Result{Name: "web", Outcome: renew.Failed, Serial: "03ab", NotAfter: tNotAfter, Failures: 1})
	if err := WriteTextfile(path, reg); err != nil {
		t.Fatal(err)
	}
	mfs = parseTextfile(t, path)
	if got := mfs["renewkit_renewal_consecutive_failures"].GetMetric()[0].GetGauge().GetValue(); got != 1 {
		t.Errorf("after the second write, failures = %v, want 1", got)
	}
	assertOnly(t, dir, "renewkit.prom")
}

// assertOnly fails unless dir holds exactly names (no temporary files).
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

// TestWriteTextfileGatherError: a failed gather writes nothing and leaves
// the previous file, so its metrics go stale rather than partial.
func TestWriteTextfileGatherError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "renewkit.prom")
	if err := os.WriteFile(path, []byte("previous 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, boom })
	err := WriteTextfile(path, g)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want one wrapping %v", err, boom)
	}
	if data, _ := os.ReadFile(path); string(data) != "previous 1\n" {
		t.Errorf("file changed to %q", data)
	}
	assertOnly(t, dir, "renewkit.prom")
}

func TestWriteTextfileMissingDir(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "renewkit.prom")
	reg, _ := newRegistry(t)
	err := WriteTextfile(path, reg)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want fs.ErrNotExist", err)
	}
	if err != nil && !bytes.Contains([]byte(err.Error()), []byte(path)) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

// TestWriteTextfileRemovesStaleTemps: temporary files of writes killed
// mid-way are removed once old; young ones (a concurrent writer's) and
// other files are left alone.
func TestWriteTextfileRemovesStaleTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "renewkit.prom")
	old := time.Now().Add(-2 * staleTempAge)
	files := []struct {
		name string
		old  bool
	}{
		{".renewkit.prom4242", true},             // ours, stale: removed
		{".renewkit.prom77", false},              // ours, young: kept
		{".renewkit.prom12x", true},              // not our pattern: kept
		{".renewkit.prom", true},                 // no digits: kept
		{".other.prom99", true},                  // another file's: kept
		{"node.prom", true},                      // another collector's: kept
		{".renewkit.prom.4242", true},            // not our pattern: kept
		{"renewkit.prom4242", true},              // not hidden: kept
		{".renewkit.prom-temp-0000000001", true}, // not ours: kept
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte("x 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if f.old {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	reg, _ := newRegistry(t)
	if err := WriteTextfile(path, reg); err != nil {
		t.Fatal(err)
	}
	want := []string{"renewkit.prom"}
	for _, f := range files[1:] {
		want = append(want, f.name)
	}
	assertOnly(t, dir, want...)
}
