package metrics

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"
)

// rulesDir holds the example alert rules and their promtool unit tests.
var rulesDir = filepath.Join("..", "examples", "prometheus")

const (
	rulesFile     = "renewkit-alerts.yml"
	rulesTestFile = "renewkit-alerts.test.yml"
)

// TestAlertRulesUseExportedNames checks, without promtool, that every
// renewkit metric the rules and their tests name is one the Collector
// exports: a renamed metric must not leave a rule that never fires.
func TestAlertRulesUseExportedNames(t *testing.T) {
	t.Parallel()
	name := regexp.MustCompile(`\brenewkit_[a-z_]+\b`)
	for _, file := range []string{rulesFile, rulesTestFile} {
		data, err := os.ReadFile(filepath.Join(rulesDir, file))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, m := range name.FindAll(data, -1) {
			n := string(m)
			if seen[n] {
				continue
			}
			seen[n] = true
			if !slices.Contains(allNames, n) {
				t.Errorf("%s names %s, which the Collector does not export", file, n)
			}
		}
		if len(seen) == 0 {
			t.Errorf("%s names no renewkit metric", file)
		}
	}
}

// TestAlertRulesPromtool runs `promtool check rules` and the rules' unit
// tests (`promtool test rules`) when promtool is installed.
func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH, alert rules not checked. Debian's prometheus package has it; " +
			"without installing the server: apt-get download prometheus && dpkg-deb -x prometheus_*.deb DIR, " +
			"then PATH=DIR/usr/bin:$PATH")
	}
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", rulesTestFile},
	} {
		t.Run(args[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, promtool, args...)
			cmd.Dir = rulesDir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("promtool %v: %v\n%s", args, err, out)
			} else {
				t.Logf("promtool %v:\n%s", args, out)
			}
		})
	}
}
