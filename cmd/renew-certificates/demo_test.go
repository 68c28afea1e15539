package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	root := filepath.Join(t.TempDir(), "demo")
	code, out, log := runCLI(t, context.Background(), "-demo", "-root", root)
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, log)
	}
	for _, want := range []string{
		"Storage root: " + root,
		"1. First run",
		"2. Second run",
		"Orders at the CA: 2 before this run, 2 after; deploy hook runs: 2 before, 2 after.",
		"3. The status table",
		"-config " + filepath.Join(root, "renewkit.toml") + " -status",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	first, second, _ := strings.Cut(out, "2. Second run")
	if strings.Count(first, " renewed ") != 2 || strings.Count(second, " not_due ") != 2 {
		t.Errorf("demo output:\n%s", out)
	}
	hookLog, err := os.ReadFile(filepath.Join(root, demoHookLog))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(hookLog)), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "load and match") {
		t.Errorf("hook log:\n%s", hookLog)
	}
	if strings.Contains(log, "level=ERROR") || strings.Contains(log, "level=WARN") {
		t.Errorf("demo logged problems:\n%s", log)
	}
	// The configuration it wrote works offline afterwards.
	code, out, log = runCLI(t, context.Background(), "-config", filepath.Join(root, "renewkit.toml"), "-status")
	if code != ExitOK || strings.Count(out, "renewed") != 2 {
		t.Errorf("status after the demo: exit %d\n%s\n%s", code, out, log)
	}
	// A second demo refuses the used directory.
	code, _, log = runCLI(t, context.Background(), "-demo", "-root", root)
	if code != ExitUsage || !strings.Contains(log, "is not empty") {
		t.Errorf("demo in a used root: exit %d\n%s", code, log)
	}
}

func TestDemoHookUsage(t *testing.T) {
	t.Setenv("RENEWKIT_NAME", "")
	if code, _, log := runCLI(t, context.Background(), demoHookFlag, filepath.Join(t.TempDir(), "log")); code != ExitUsage || !strings.Contains(log, "RENEWKIT_NAME") {
		t.Errorf("exit %d: %s", code, log)
	}
}

// TestDemoHookSurvivesGoRun: under `go run` the program is a temporary file
// that go deletes at exit, and the -dry-run the demo suggests then failed
// its preflight ("deploy hook ...: no such file"). The hook's program is
// copied beside the demo's files instead.
func TestDemoHookSurvivesGoRun(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(exe, string(filepath.Separator)+"go-build") {
		t.Skipf("the test binary %s is not in a go-build directory", exe)
	}
	dir := t.TempDir()
	argv, err := demoHookArgv(filepath.Join(dir, "deploy-hook.log"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(argv[0]) != dir {
		t.Fatalf("hook program %s, want a copy in %s", argv[0], dir)
	}
	fi, err := os.Stat(argv[0])
	if err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("hook program %s: %v, mode %v; want an executable copy", argv[0], err, fi.Mode())
	}
}
