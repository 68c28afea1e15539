package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the README's first command in-process: two certificates
// issued by the in-process CA with their deploy hook run once each, a
// second run that orders nothing and runs no hook, and the status table.
func TestDemo(t *testing.T) {
	root := filepath.Join(t.TempDir(), "demo")
	var out, log bytes.Buffer
	if code := run(context.Background(), []string{"-demo", "-root", root}, &out, &log); code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &out, &log)
	}
	s := out.String()
	for _, want := range []string{
		"Storage root: " + root,
		"Orders at the CA: 2 before this run, 2 after; deploy hook runs: 2 before, 2 after.",
		"3. Renewer.Status",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	first, second, _ := strings.Cut(s, "2. Second run")
	if strings.Count(first, " renewed ") != 2 || strings.Count(second, " not_due ") != 2 {
		t.Errorf("demo output:\n%s", s)
	}
	hookLog, err := os.ReadFile(filepath.Join(root, "deploy-hook.log"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(hookLog)), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "load and match") {
		t.Errorf("hook log:\n%s", hookLog)
	}
	if log.Len() > 0 {
		t.Errorf("demo logged problems:\n%s", &log)
	}
	for _, name := range []string{"example", "api"} {
		if _, err := os.Stat(filepath.Join(root, name, "fullchain.pem")); err != nil {
			t.Errorf("%s not installed: %v", name, err)
		}
	}

	// A second demo refuses the used directory.
	log.Reset()
	if code := run(context.Background(), []string{"-demo", "-root", root}, &out, &log); code != exitUsage || !strings.Contains(log.String(), "is not empty") {
		t.Errorf("demo in a used root: exit %d\n%s", code, &log)
	}
}

// TestNotTheCLI: without -demo (someone used to the command's old place,
// examples/renew-certificates) the program says where the command is.
func TestNotTheCLI(t *testing.T) {
	for _, args := range [][]string{nil, {"-demo", "extra"}} {
		var out, log bytes.Buffer
		if code := run(context.Background(), args, &out, &log); code != exitUsage || !strings.Contains(log.String(), "./cmd/renew-certificates") {
			t.Errorf("%q: exit %d\n%s", args, code, &log)
		}
	}
	var out, log bytes.Buffer
	if code := run(context.Background(), []string{"-config", "/etc/renewkit/config.toml"}, &out, &log); code != exitUsage {
		t.Errorf("-config: exit %d, want %d\n%s", code, exitUsage, &log)
	}
}
