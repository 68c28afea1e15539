//go:build unix

package hooks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var testEvent = Event{
	Lineage:    "example",
	Dir:        "/etc/renewkit/example",
	Domains:    []string{"example.com", "www.example.com"},
	Generation: 42,
	NotAfter:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600)),
	Serial:     "04a1b2",
}

// parseEnv parses the output of env(1).
func parseEnv(t *testing.T, out string) map[string]string {
	t.Helper()
	env := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("env output line %q", line)
		}
		if _, dup := env[k]; dup {
			t.Errorf("variable %s set twice", k)
		}
		env[k] = v
	}
	return env
}

func TestCommandEnvironment(t *testing.T) {
	t.Setenv("RENEWKIT_TEST_SECRET", "must-not-leak")
	t.Setenv("RENEWKIT_TEST_INHERITED", "inherited")
	t.Setenv("LANG", "C.UTF-8")
	h := Command("env").
		WithEnv("EXTRA=1", "RENEWED_LINEAGE=/overridden").
		WithInheritEnv("RENEWKIT_TEST_INHERITED", "RENEWKIT_TEST_UNSET")
	out, err := h.run(t.Context(), testEvent)
	if err != nil {
		t.Fatal(err)
	}
	got := parseEnv(t, out.String())
	want := map[string]string{
		"PATH":                    os.Getenv("PATH"),
		"LANG":                    "C.UTF-8",
		"EXTRA":                   "1",
		"RENEWKIT_TEST_INHERITED": "inherited",
		"RENEWED_LINEAGE":         "/etc/renewkit/example", // the event wins over WithEnv
		"RENEWED_DOMAINS":         "example.com www.example.com",
		"RENEWKIT_NAME":           "example",
		"RENEWKIT_GENERATION":     "42",
		"RENEWKIT_NOT_AFTER":      "2026-03-01T11:00:00Z",
		"RENEWKIT_SERIAL":         "04a1b2",
		"RENEWKIT_CERT":           "/etc/renewkit/example/cert.pem",
		"RENEWKIT_CHAIN":          "/etc/renewkit/example/chain.pem",
		"RENEWKIT_FULLCHAIN":      "/etc/renewkit/example/fullchain.pem",
		"RENEWKIT_KEY":            "/etc/renewkit/example/privkey.pem",
		"RENEWKIT_COMBINED":       "/etc/renewkit/example/combined.pem",
	}
	for _, k := range []string{"HOME", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			want[k] = v
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected variable %s=%q in the hook's environment", k, got[k])
		}
	}
}

func TestCommandNoShell(t *testing.T) {
	t.Parallel()
	args := []string{"a; echo injected", "$(echo substituted)", "`id`", "*", "$HOME", "x > /tmp/renewkit-no", ""}
	h := Command(append([]string{"printf", `[%s]\n`}, args...)...)
	out, err := h.run(t.Context(), testEvent)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, a := range args {
		fmt.Fprintf(&want, "[%s]\n", a)
	}
	if out.String() != want.String() {
		t.Errorf("output %q, want the arguments verbatim %q", out.String(), want.String())
	}
}

func TestCommandExitStatus(t *testing.T) {
	t.Parallel()
	h := Command("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	_, err := h.run(t.Context(), testEvent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("err = %v, want an *exec.ExitError with status 3", err)
	}
	var ce *commandError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %T, want *commandError", err)
	}
	if got := ce.Output.String(); got != "to-stdout\nto-stderr\n" {
		t.Errorf("Output = %q, want both streams in order", got)
	}
	for _, s := range []string{h.Name(), "exit status 3", "to-stdout", "to-stderr"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

// TestCommandErrorRedactsOutput: a failing hook's output reached the logs,
// the CLI's /readyz body and the Result unredacted (only state.json's copy
// was redacted): a `curl -v` prints its bearer token.
func TestCommandErrorRedactsOutput(t *testing.T) {
	t.Parallel()
	h := Command("sh", "-c", `t=s3cr3t; echo "> Authorization: Bearer tok-$t"; echo '< HTTP/1.1 401'; exit 1`)
	_, err := h.run(t.Context(), testEvent)
	if err == nil {
		t.Fatal("the hook succeeded")
	}
	if strings.Contains(err.Error(), "tok-s3cr3t") {
		t.Errorf("error holds the token: %v", err)
	}
	for _, kept := range []string{"HTTP/1.1 401", "[redacted]", "exit status 1"} {
		if !strings.Contains(err.Error(), kept) {
			t.Errorf("error %q lost %q", err, kept)
		}
	}
	var ce *commandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Output.String(), "tok-s3cr3t") {
		t.Errorf("CommandError.Output should keep the raw bytes for the caller")
	}
}

func TestCommandStartErrors(t *testing.T) {
	t.Parallel()
	notExecutable := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		hook    *CommandHook
		is      error
		mention string
	}{
		{"missing in PATH", Command("renewkit-no-such-hook", "x"), exec.ErrNotFound, `"renewkit-no-such-hook"`},
		{"missing absolute path", Command("/nonexistent/renewkit-hook"), fs.ErrNotExist, "/nonexistent/renewkit-hook"},
		{"not executable", Command(notExecutable), fs.ErrPermission, notExecutable},
		{"empty argv", Command(), errEmptyCommand, "empty command"},
		{"empty unit", Reload(""), nil, "invalid unit name"},
		{"unit looks like an option", Reload("--all"), nil, `"--all"`},
		{"malformed env", Command("true").WithEnv("NOEQUALS"), nil, `"NOEQUALS" is not KEY=VALUE`},
		{"empty env key", Command("true").WithEnv("=x"), nil, "is not KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.hook.Run(t.Context(), testEvent)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("err = %q, want it to mention %q", err, tt.mention)
			}
		})
	}
}

func TestCommandTimeout(t *testing.T) {
	t.Parallel()
	err := Command("sleep", "1000").WithTimeout(50*time.Millisecond).Run(t.Context(), testEvent)
	if !errors.Is(err, errTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want errTimeout and DeadlineExceeded", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("err = %v matches context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "timed out after 50ms") {
		t.Errorf("err = %q, want the timeout in the message", err)
	}
}

func TestCommandContextCanceled(t *testing.T) {
	t.Parallel()
	t.Run("before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := Command("true").Run(ctx, testEvent)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "not started") {
			t.Fatalf("err = %v, want context.Canceled, not started", err)
		}
	})
	t.Run("while running", func(t *testing.T) {
		fifo := filepath.Join(t.TempDir(), "started")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Skip(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			// Opening a FIFO for reading blocks until the hook opens it for
			// writing: cancel once the hook is running.
			f, err := os.Open(fifo)
			if err == nil {
				_, _ = bufio.NewReader(f).ReadString('\n')
				f.Close()
			}
			cancel()
		}()
		err := Command("sh", "-c", `echo started > "$FIFO"; exec sleep 1000`).
			WithEnv("FIFO="+fifo).Run(ctx, testEvent)
		if !errors.Is(err, context.Canceled) || errors.Is(err, errTimeout) {
			t.Fatalf("err = %v, want context.Canceled and not errTimeout", err)
		}
		if !strings.Contains(err.Error(), "process group killed") {
			t.Errorf("err = %q", err)
		}
	})
}

func TestCommandOutputBounded(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	script := fmt.Sprintf("yes 0123456789abcde | head -c %d; echo END", size)
	t.Run("success", func(t *testing.T) {
		t.Parallel()
		out, err := Command("sh", "-c", script).run(t.Context(), testEvent)
		if err != nil {
			t.Fatal(err)
		}
		if out.Total != size+4 || len(out.Tail) != defaultOutputLimit || !out.Truncated() {
			t.Fatalf("Total %d, len(Tail) %d, Truncated %v; want %d, %d, true",
				out.Total, len(out.Tail), out.Truncated(), size+4, defaultOutputLimit)
		}
		if !strings.HasSuffix(string(out.Tail), "0123456789abcde\nEND\n") {
			t.Errorf("Tail ends %q, want the last bytes printed", out.Tail[len(out.Tail)-40:])
		}
		if s := out.String(); !strings.HasPrefix(s, fmt.Sprintf("[… %d earlier bytes omitted]\n", size+4-defaultOutputLimit)) {
			t.Errorf("String starts %q, want a truncation marker", s[:60])
		}
	})
	t.Run("failure", func(t *testing.T) {
		t.Parallel()
		err := Command("sh", "-c", script+"; exit 1").WithOutputLimit(1000).Run(t.Context(), testEvent)
		var ce *commandError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v", err)
		}
		if len(ce.Output.Tail) != 1000 || ce.Output.Total != size+4 {
			t.Errorf("len(Tail) %d, Total %d", len(ce.Output.Tail), ce.Output.Total)
		}
		msg := err.Error()
		if len(msg) > 1500 || !strings.Contains(msg, "earlier bytes omitted") || !strings.HasSuffix(msg, "\nEND") {
			t.Errorf("error message (%d bytes) not bounded or without marker:\n%s", len(msg), msg)
		}
	})
	t.Run("error message quotes at most 4 KiB", func(t *testing.T) {
		t.Parallel()
		err := Command("sh", "-c", script+"; exit 1").Run(t.Context(), testEvent)
		if n := len(err.Error()); n > errorOutputLimit+500 {
			t.Errorf("error message is %d bytes", n)
		}
	})
}

// TestCommandLingeringChild: a hook that exits but leaves a background
// child holding its output open must not hang the run.
func TestCommandLingeringChild(t *testing.T) {
	t.Parallel()
	out, err := Command("sh", "-c", "sleep 1000 & echo $$").
		WithWaitDelay(100*time.Millisecond).run(t.Context(), testEvent)
	if pgid, perr := strconv.Atoi(strings.TrimSpace(string(out.Tail))); perr == nil {
		t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	} else {
		t.Errorf("output %q, want the group ID", out.Tail)
	}
	if err != nil {
		t.Fatalf("err = %v, want success (the command exited 0)", err)
	}
	if !out.Lingered {
		t.Error("Lingered = false")
	}
}

func TestCommandDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, err := Command("pwd", "-P").WithDir(dir).run(t.Context(), testEvent)
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != want {
		t.Errorf("ran in %q, want %q", got, want)
	}
}

func TestCommandConcurrentRuns(t *testing.T) {
	t.Parallel()
	h := Command("sh", "-c", `echo "$RENEWKIT_GENERATION"`)
	errs := make(chan error, 8)
	for i := range cap(errs) {
		go func() {
			ev := testEvent
			ev.Generation = i
			out, err := h.run(t.Context(), ev)
			if err == nil && strings.TrimSpace(out.String()) != strconv.Itoa(i) {
				err = fmt.Errorf("run %d printed %q", i, out.String())
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestCommandWithReturnsCopies(t *testing.T) {
	t.Parallel()
	base := Command("true").WithEnv("A=1")
	derived := base.WithTimeout(time.Second).WithEnv("B=2").WithName("other").WithDir("/").
		WithInheritEnv("X").WithOutputLimit(5).WithWaitDelay(time.Second)
	if base.timeout != defaultTimeout || base.name != "true" || base.dir != "" ||
		!slices.Equal(base.env, []string{"A=1"}) || base.inherit != nil ||
		base.limit != defaultOutputLimit || base.waitDelay != defaultWaitDelay {
		t.Errorf("base changed: %+v", base)
	}
	if derived.Name() != "other" || !slices.Equal(derived.env, []string{"A=1", "B=2"}) {
		t.Errorf("derived: %+v", derived)
	}
	argv := base.Argv()
	argv[0] = "false"
	if base.Argv()[0] != "true" {
		t.Error("Argv shares memory with the hook")
	}
}

// TestReplayKeepsCommandOutputOutOfTheJournal: what a failing command
// prints is not persisted, whatever the redaction patterns catch (a
// cookie, curl -u, --password VALUE): state.json is shown by status tools
// and readiness endpoints. Its size and where to find it are.
func TestReplayKeepsCommandOutputOutOfTheJournal(t *testing.T) {
	t.Parallel()
	script := `echo "Cookie: sessionid=c00kie-v4l"; echo "curl -u admin:adm1n-pw https://x"; echo "--password s3cret-v4lue"; exit 3`
	h := Command("sh", "-c", script).WithName("deploy")
	j := &Journal{}
	if err := j.Record(Event{Lineage: "www", Generation: 1}, []Hook{h}, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.Replay(t.Context(), []Hook{h}, func(*Journal) error { return nil }, quiet); err == nil {
		t.Fatal("Replay succeeded with a failing hook")
	}
	b := fmt.Sprintf("%+v", j)
	for _, secret := range []string{"c00kie-v4l", "adm1n-pw", "s3cret-v4lue"} {
		if strings.Contains(b, secret) {
			t.Errorf("persisted journal holds %q:\n%s", secret, b)
		}
	}
	if le := j.Entries[0].Pending[0].LastError; !strings.Contains(le, "exit status 3") || !strings.Contains(le, "in the log") {
		t.Errorf("LastError %q: want the exit status and where the output is", le)
	}
}
