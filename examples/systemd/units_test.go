package systemd_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	serviceFile = "renew-certificates.service"
	timerFile   = "renew-certificates.timer"
	// binary is the program ExecStart runs; the verify test replaces it with
	// a stub because systemd-analyze checks that it is executable.
	binary = "/usr/local/bin/renew-certificates"
)

// unit is a parsed unit file: section → key → values, in file order (keys
// such as ReadWritePaths may repeat).
type unit map[string]map[string][]string

func (u unit) get(section, key string) []string { return u[section][key] }

// last returns the effective value of a single-valued key (the last one
// wins in systemd), or "" if the key is absent.
func (u unit) last(section, key string) string {
	v := u.get(section, key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// parseUnit reads a unit file in the subset of the syntax these examples
// use: [Section] headers, Key=Value lines, # and ; comments, no
// continuation lines (those are reported, so the parser never reads a unit
// wrong silently).
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case strings.HasSuffix(line, "\\"):
			t.Fatalf("%s:%d: continuation lines are not supported by this test's parser", path, n)
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a Key=Value line in a section: %q", path, n, line)
		}
		key = strings.TrimSpace(key)
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestServiceSettings checks the settings the README and the issue promise,
// without systemd: this runs on any machine.
func TestServiceSettings(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, serviceFile)
	for _, tc := range []struct{ key, want string }{
		{"Type", "oneshot"},
		{"User", "renewkit"},
		{"Group", "renewkit"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"PrivateTmp", "yes"},
		{"ProtectHome", "yes"},
		{"PrivateDevices", "yes"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"CapabilityBoundingSet", ""},
		{"ManagedOOMPreference", "avoid"},
		{"OOMScoreAdjust", "-500"},
		{"TimeoutStartSec", "15min"},
		{"KillMode", "mixed"},
		{"KillSignal", "SIGTERM"},
		{"TimeoutStopSec", "30s"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if _, ok := u["Service"][tc.key]; !ok {
				t.Fatalf("[Service] %s is not set", tc.key)
			}
			if got := u.last("Service", tc.key); got != tc.want {
				t.Errorf("[Service] %s=%q, want %q", tc.key, got, tc.want)
			}
		})
	}
	// A one-shot run triggered by the timer: no [Install], no Restart.
	if _, ok := u["Install"]; ok {
		t.Error("the service has an [Install] section; the timer starts it")
	}
	if r := u.last("Service", "Restart"); r != "" && r != "no" {
		t.Errorf("Restart=%s; renewkit backs off across runs itself", r)
	}
}

// TestServiceWritablePaths checks that everything the run writes is under
// a ReadWritePaths entry: with ProtectSystem=strict the rest is read-only.
func TestServiceWritablePaths(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, serviceFile)
	var writable []string
	for _, v := range u.get("Service", "ReadWritePaths") {
		for _, p := range strings.Fields(v) {
			writable = append(writable, strings.TrimLeft(p, "-+"))
		}
	}
	argv := strings.Fields(u.last("Service", "ExecStart"))
	if len(argv) == 0 || argv[0] != binary {
		t.Fatalf("ExecStart=%q, want %s first", u.last("Service", "ExecStart"), binary)
	}
	metrics := flagValue(argv, "-metrics-file")
	if metrics == "" || !strings.HasSuffix(metrics, ".prom") {
		t.Fatalf("ExecStart has -metrics-file %q, want a .prom file", metrics)
	}
	for _, p := range []string{"/var/lib/renewkit", filepath.Dir(metrics)} {
		if !slices.Contains(writable, p) {
			t.Errorf("%s is not in ReadWritePaths %q", p, writable)
		}
	}
	if got := flagValue(argv, "-log-format"); got != "json" {
		t.Errorf("-log-format %q, want json (journald)", got)
	}
	if got := flagValue(argv, "-config"); got != "/etc/renewkit/config.toml" {
		t.Errorf("-config %q, want /etc/renewkit/config.toml", got)
	}
}

func flagValue(argv []string, name string) string {
	for i, a := range argv {
		if a == name && i+1 < len(argv) {
			return argv[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func TestTimerSettings(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, timerFile)
	for _, tc := range []struct{ section, key, want string }{
		{"Timer", "OnCalendar", "*-*-* 00,12:00:00"},
		{"Timer", "RandomizedDelaySec", "1h"},
		{"Timer", "Persistent", "true"},
		{"Install", "WantedBy", "timers.target"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := u.last(tc.section, tc.key); got != tc.want {
				t.Errorf("[%s] %s=%q, want %q", tc.section, tc.key, got, tc.want)
			}
		})
	}
	// The timer starts the service of the same name (no Unit=).
	if got := u.last("Timer", "Unit"); got != "" && got != serviceFile {
		t.Errorf("[Timer] Unit=%s, want %s", got, serviceFile)
	}
}

// environmental lists systemd-analyze messages that mean the machine cannot
// verify units (no system units installed, no way to set up a manager),
// not that ours are wrong.
var environmental = []string{
	"Unit sysinit.target not found",
	"Failed to initialize manager",
	"Failed to allocate manager object",
	"Failed to set up",
}

// TestVerify runs `systemd-analyze verify` on both units. It catches what
// the settings tests cannot: unknown keys, unparsable values (systemd only
// warns about them and runs the unit without the setting), bad calendar
// expressions. Warnings fail the test, not only a non-zero exit.
func TestVerify(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd); unit files not verified")
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "renew-certificates")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, name := range []string{timerFile, serviceFile} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		// systemd-analyze checks that ExecStart's program is executable.
		data = bytes.ReplaceAll(data, []byte(binary), []byte(stub))
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, append([]string{"verify", "--man=no"}, files...)...)
	out, err := cmd.CombinedOutput()
	for _, msg := range environmental {
		if bytes.Contains(out, []byte(msg)) {
			t.Skipf("systemd-analyze verify cannot run here (%q):\n%s", msg, out)
		}
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", analyze, err)
	}
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
