package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/renew"
)

const serveHead = "server = \"staging\"\nroot = \"/srv/certs\"\n\n[[certificate]]\nname = \"ok\"\ndomains = [\"ok.example\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n" // lines 1-7

func TestServeConfig(t *testing.T) {
	cfg, err := parseConfig("c.toml", []byte(serveHead), overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := serveConfig{Listen: defaultListen, Grace: defaultGrace, ReadyLevel: expiry.LevelWarning}
	if cfg.Serve != want {
		t.Errorf("defaults: %+v, want %+v", cfg.Serve, want)
	}
	cfg, err = parseConfig("c.toml", []byte(serveHead+"\n[serve]\nlisten = \":9750\"\ngrace = \"25s\"\nready_level = \"Urgent\"\n"), overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want = serveConfig{Listen: ":9750", Grace: 25 * time.Second, ReadyLevel: expiry.LevelUrgent}
	if cfg.Serve != want {
		t.Errorf("set: %+v, want %+v", cfg.Serve, want)
	}
	if g := cfg.Serve.hookGrace(); g != 20*time.Second {
		t.Errorf("hook grace %v, want 20s", g)
	}
	listen := "[::1]:0"
	cfg, err = parseConfig("c.toml", []byte(serveHead+"\n[serve]\nlisten = \":9750\"\n"), overrides{Listen: &listen})
	if err != nil || cfg.Serve.Listen != listen {
		t.Errorf("-listen over serve.listen: %+v, %v", cfg.Serve, err)
	}
}

func TestServeConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ov   overrides
		want string
	}{
		{"listen without port", "[serve]\nlisten = \"127.0.0.1\"\n", overrides{}, "c.toml:10: serve: listen \"127.0.0.1\": want host:port"},
		{"listen bad port", "[serve]\nlisten = \":http\"\n", overrides{}, "c.toml:10: serve: listen \":http\": port \"http\" is not a number"},
		{"grace too short", "[serve]\ngrace = \"1s\"\n", overrides{}, "c.toml:10: serve: grace 1s must be between 2s and 10m0s"},
		{"grace not a duration", "[serve]\ngrace = 15\n", overrides{}, "c.toml:10:"},
		{"bad ready level", "[serve]\nready_level = \"ok\"\n", overrides{}, "c.toml:10: serve: ready_level: \"ok\" is not one of"},
		{"unknown key", "[serve]\naddr = \":9750\"\n", overrides{}, "c.toml:10: unknown key serve.addr"},
		{"bad -listen", "", overrides{Listen: new("9750")}, "flag -listen: serve: listen \"9750\": want host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("c.toml", []byte(serveHead+"\n"+tt.in), tt.ov)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestServeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-serve", "-metrics-file", "x.prom"},
		{"-listen", ":9750"},
		{"-serve", "-status"},
		{"-serve", "-dry-run"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	opts, err := parseFlags([]string{"-serve", "-listen", ":0", "-force", "all"})
	if err != nil || !opts.serve || opts.overrides.Listen == nil || *opts.overrides.Listen != ":0" {
		t.Errorf("-serve -listen :0: %+v, %v", opts, err)
	}
}

// readyClock is a settable clock.
type readyClock struct{ t time.Time }

func (c *readyClock) now() time.Time { return c.t }

func TestReadiness(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clk := &readyClock{t: start}
	rd := newReadiness(clk.now)
	certs := []renew.Certificate{{Name: "a"}, {Name: "b"}}
	// a is installed on disk, valid 90 days from now; b is not.
	rd.configure(certs, expiry.LevelWarning, []renew.Status{
		{Name: "a", Installed: true, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)},
		{Name: "b"},
	}, false)
	check := func(step string, want ...string) readyReport {
		t.Helper()
		rep := rd.report()
		var got []string
		for _, f := range rep.Failing {
			got = append(got, f.Name+": "+f.Problem)
		}
		if rep.Ready != (len(want) == 0) || len(got) != len(want) {
			t.Fatalf("%s: failing %q, want %q", step, got, want)
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Fatalf("%s: failing %q, want %q", step, got, want)
			}
		}
		return rep
	}
	check("primed", "b: no certificate installed yet")

	b := renew.Result{Name: "b", Outcome: renew.Renewed, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)}
	rd.Finished(b)
	check("b issued")

	// A transient failure keeps a ready and is a warning.
	transient := renew.Result{Name: "a", Outcome: renew.Failed, Err: backoff.Transient(errors.New("connection reset")), NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)}
	rd.Finished(transient)
	if rep := check("transient failure"); len(rep.Warnings) != 1 || rep.Warnings[0].Problem != "connection reset" {
		t.Errorf("warnings %+v", rep.Warnings)
	}
	// Backing off afterwards keeps the warning; time passing to the
	// warning level (14 days left) makes a not ready.
	rd.Finished(renew.Result{Name: "a", Outcome: renew.BackingOff, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	clk.t = start.Add(76*24*time.Hour + time.Minute)
	check("14 days left", "a: ", "b: ")
	if rep := rd.report(); rep.Failing[0].Alert != "warning" || !strings.Contains(rep.Failing[0].Problem, "renewal is overdue") {
		t.Errorf("a past the threshold: %+v", rep.Failing[0])
	}
	clk.t = start.Add(91 * 24 * time.Hour)
	check("expired", "a: expired at ", "b: expired at ")

	// A renewal puts a right; a permanent failure makes b not ready while
	// its certificate is still valid, until a run succeeds.
	clk.t = start.Add(time.Hour)
	rd.Finished(renew.Result{Name: "a", Outcome: renew.Renewed, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	perm := renew.Result{Name: "b", Outcome: renew.Failed, Err: fmt.Errorf("b: %w", backoff.Permanent(errors.New("unauthorized"))), NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)}
	rd.Finished(perm)
	check("permanent failure", "b: cannot be renewed: b: unauthorized")
	rd.Finished(renew.Result{Name: "b", Outcome: renew.BackingOff, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	check("still backing off", "b: cannot be renewed")
	local := renew.Result{Name: "b", Outcome: renew.Failed, Err: &renew.LocalError{What: "webroot /nope", Err: errors.New("no such directory")}}
	rd.Finished(local) // carries no state: the validity stays known
	check("local failure", "b: cannot be renewed: webroot /nope")
	rd.Finished(renew.Result{Name: "b", Outcome: renew.NotDue, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	check("b fine again")
	// A stuck lock holder: nothing renews b, said as a warning (b's
	// certificate is still valid; the alert levels take over in time).
	stuck := renew.Result{Name: "b", Outcome: renew.LockStuck, Err: errors.New("b: lineage lock held longer than any run can take: pid 4242")}
	rd.Finished(stuck)
	if rep := check("lock stuck"); len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0].Problem, "pid 4242") {
		t.Errorf("warnings %+v", rep.Warnings)
	}
	rd.Finished(renew.Result{Name: "b", Outcome: renew.NotDue, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	check("b fine again after the stuck lock")

	// Failing hooks are a warning until they succeed.
	rd.Finished(renew.Result{Name: "a", Outcome: renew.Renewed, HookErr: errors.New("nginx: reload failed"), HooksPending: 1, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	if rep := check("hook failing"); len(rep.Warnings) != 1 {
		t.Errorf("warnings %+v", rep.Warnings)
	}
	rd.Finished(renew.Result{Name: "a", Outcome: renew.NotDue, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	if rep := check("hooks done"); len(rep.Warnings) != 0 {
		t.Errorf("warnings %+v", rep.Warnings)
	}

	// A reload that drops b forgets it; a result for it is ignored.
	rd.configure(certs[:1], expiry.LevelWarning, nil, false)
	rd.Finished(perm)
	if rep := check("b removed"); rep.Certificates != 1 {
		t.Errorf("certificates %d", rep.Certificates)
	}

	// Over HTTP: 200 or 503, JSON either way.
	rd.configure(certs, expiry.LevelWarning, nil, false)
	rd.Finished(perm)
	rec := httptest.NewRecorder()
	rd.serveHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var rep readyReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rec.Code != http.StatusServiceUnavailable || rep.Ready || rep.Failing[0].Name != "b" {
		t.Errorf("/readyz: %d %s (%v)", rec.Code, rec.Body, err)
	}
}

func TestServeStartErrors(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.toml")
	conf := strings.Replace(serveHead, "/srv/certs", filepath.Join(dir, "root"), 1)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	code, _, stderr := runCLI(t, t.Context(), "-serve", "-config", cfgPath, "-listen", busy.Addr().String())
	if code != exitFailed || !strings.Contains(stderr, "serve.listen "+busy.Addr().String()) || !strings.Contains(stderr, "fix: free the address") {
		t.Errorf("busy address: exit %d, stderr:\n%s", code, stderr)
	}
	if err := os.WriteFile(cfgPath, []byte(conf+"\n[serve]\ngrace = \"1h\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, t.Context(), "-serve", "-config", cfgPath)
	if code != exitUsage || !strings.Contains(stderr, cfgPath+":10: serve: grace 1h0m0s must be between") {
		t.Errorf("bad grace: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestReadinessAfterRestartKeepsAPermanentFailure: primed from disk after a
// restart, a certificate whose last renewal the CA refused is not ready.
func TestReadinessAfterRestartKeepsAPermanentFailure(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	rd := newReadiness(func() time.Time { return start })
	rd.configure([]renew.Certificate{{Name: "a"}, {Name: "b"}}, expiry.LevelWarning, []renew.Status{
		{Name: "a", Installed: true, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour),
			LastOutcome: renew.Failed, LastError: "a: unauthorized", LastErrorPermanent: true},
		{Name: "b", Installed: true, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour),
			LastOutcome: renew.Failed, LastError: "b: connection reset"},
	}, false)
	rep := rd.report()
	if rep.Ready || len(rep.Failing) != 1 || rep.Failing[0].Name != "a" {
		t.Fatalf("failing %+v, want a only", rep.Failing)
	}
	if len(rep.Warnings) != 1 || rep.Warnings[0].Name != "b" {
		t.Fatalf("warnings %+v, want b only", rep.Warnings)
	}
}
