//go:build unix

package hooks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func addPlatformRoles(m map[string]func() error) {
	m["crash"] = helperCrash
	addLinuxRoles(m)
}

const (
	crashDirEnv   = "RENEWKIT_HOOKS_TEST_DIR"
	crashPointEnv = "RENEWKIT_HOOKS_TEST_CRASH"
	crashMarker   = "CRASH-POINT "
)

// crashEvent is the generation the crash tests install.
func crashEvent(dir string) Event {
	return Event{Lineage: "example", Dir: dir, Domains: []string{"example.com", "www.example.com"}, Generation: 7}
}

// crashHooks are the hooks of the crash tests: each appends a line to its
// marker file, a Command through the environment and a Func directly, so the
// markers count the runs.
func crashHooks(dir string) []Hook {
	return []Hook{
		Command("sh", "-c", `echo "$RENEWKIT_GENERATION $RENEWED_DOMAINS" >> "$MARKER"`).
			WithEnv("MARKER=" + filepath.Join(dir, "marker-cmd")),
		Func("append-marker", func(_ context.Context, ev Event) error {
			f, err := os.OpenFile(filepath.Join(dir, "marker-func"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(f, "%d %s\n", ev.Generation, strings.Join(ev.Domains, " ")); err != nil {
				f.Close()
				return err
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}),
	}
}

// helperCrash records the crash event with crashHooks, persists, and replays,
// stopping at the crash point named by crashPointEnv: there it reports the
// point on stdout and blocks until the parent kills it.
func helperCrash() error {
	dir := os.Getenv(crashDirEnv)
	point := os.Getenv(crashPointEnv)
	store := fileJournal(filepath.Join(dir, "journal.json"))
	crash := func(p string) {
		if p == point {
			fmt.Printf("%s%s\n", crashMarker, p)
			// Block until SIGKILL. Reading stdin (a pipe the parent never
			// writes) blocks in a system call, which the runtime's deadlock
			// detector does not flag; EOF means the parent is gone.
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(helperFailed)
		}
	}
	j, err := store.load()
	if err != nil {
		return err
	}
	j.crash = crash
	hooks := crashHooks(dir)
	if err := j.Record(crashEvent(dir), hooks, nil); err != nil {
		return err
	}
	if err := store.persist(j); err != nil {
		return err
	}
	crash("recorded")
	log := slog.New(slog.DiscardHandler)
	if err := j.Replay(context.Background(), hooks, store.persist, log); err != nil {
		return err
	}
	return fmt.Errorf("crash point %q never reached", point)
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for _, l := range lines {
		if l != "7 example.com www.example.com" {
			t.Errorf("%s: line %q, want the recorded event's generation and domains", path, l)
		}
	}
	return len(lines)
}

// TestCrashReplay kills (SIGKILL) a process recording and replaying hooks at
// each crash point, then replays in this process: every hook has run at
// least once for the generation, exactly the hook whose success was not
// persisted ran twice, and the journal ends empty.
func TestCrashReplay(t *testing.T) {
	hookNames := []string{crashHooks("")[0].Name(), "append-marker"}
	tests := []struct {
		name    string
		point   string
		pending int // in the journal the killed process left
		cmd, fn int // runs in total, after the parent's replay
	}{
		{"before replay", "recorded", 2, 1, 1},
		{"before command", "before-run " + hookNames[0], 2, 1, 1},
		{"command ran, not persisted", "after-run " + hookNames[0], 2, 2, 1},
		{"command persisted", "after-persist " + hookNames[0], 1, 1, 1},
		{"before func", "before-run " + hookNames[1], 1, 1, 1},
		{"func ran, not persisted", "after-run " + hookNames[1], 1, 1, 2},
		{"func persisted", "after-persist " + hookNames[1], 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			killAt(t, dir, tt.point)

			store := fileJournal(filepath.Join(dir, "journal.json"))
			j, err := store.load()
			if err != nil {
				t.Fatalf("journal left by the killed process: %v", err)
			}
			if got := j.PendingCount(); got != tt.pending {
				t.Fatalf("killed at %q: %d pending, want %d: %+v", tt.point, got, tt.pending, j.Entries)
			}
			if err := j.Replay(context.Background(), crashHooks(dir), store.persist, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if j, err = store.load(); err != nil || j.PendingCount() != 0 {
				t.Fatalf("after replay: journal %+v, %v; want empty", j, err)
			}
			if got := countLines(t, filepath.Join(dir, "marker-cmd")); got != tt.cmd {
				t.Errorf("command hook ran %d times, want %d", got, tt.cmd)
			}
			if got := countLines(t, filepath.Join(dir, "marker-func")); got != tt.fn {
				t.Errorf("func hook ran %d times, want %d", got, tt.fn)
			}
		})
	}
}

// killAt runs helperCrash in a child process and SIGKILLs it, by PID, once it
// reports reaching point.
func killAt(t *testing.T, dir, point string) {
	t.Helper()
	cmd := helperCommand(t.Context(), "crash", crashDirEnv+"="+dir, crashPointEnv+"="+point)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == crashMarker+point {
			break
		}
	}
	if !slices.Contains(lines, crashMarker+point) {
		err := cmd.Wait()
		t.Fatalf("helper exited (%v) without reaching %q; stdout %q, stderr:\n%s", err, point, lines, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper: %v, want killed", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper: %v, want killed by SIGKILL", err)
	}
}
