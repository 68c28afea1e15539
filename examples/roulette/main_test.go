package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the program's child roles: play runs
// renewals by re-executing os.Executable, which is this binary in a test.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case childFlag:
			os.Exit(child(os.Args[2:], os.Stdout, os.Stderr))
		case hookFlag:
			os.Exit(hook(os.Args[2:], os.Stderr))
		}
	}
	// Renewals and hooks are this binary; under -race each would sleep a
	// second at exit (the race runtime's default) unless told not to.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

func TestPlay(t *testing.T) {
	var out bytes.Buffer
	sum, err := play(context.Background(), options{n: 12, root: t.TempDir(), seed: 8, measure: 3, pause: 2 * time.Millisecond}, &out)
	if err != nil {
		t.Fatalf("play: %v\n%s", err, out.String())
	}
	sum.print(&out)
	t.Logf("\n%s", out.String())
	if !sum.held() {
		t.Errorf("the promise did not hold")
	}
	if sum.killed+sum.finished != 12 || sum.renewals != 12 {
		t.Errorf("renewals %d = killed %d + finished %d, want 12", sum.renewals, sum.killed, sum.finished)
	}
	if !strings.Contains(out.String(), "The promise held") {
		t.Errorf("the summary does not say the promise held")
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"extra"}, {"-bogus"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("run %q = %d, want 2", args, code)
		}
		if !strings.Contains(stderr.String(), "Usage: roulette") && !strings.Contains(stderr.String(), "flag provided but not defined") {
			t.Errorf("run %q printed no usage: %s", args, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := child([]string{"{not json"}, &stdout, &stderr); code != 2 {
		t.Errorf("child with a bad argument = %d, want 2", code)
	}
	if code := hook(nil, &stderr); code != 2 {
		t.Errorf("hook without a log = %d, want 2", code)
	}
}
