//go:build unix

package lockfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestTryLockContentionInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	before := time.Now().Add(-time.Second)
	l, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock: %v", err)
	}
	t.Cleanup(func() { _ = l.Unlock() })

	_, err = TryLock(path)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock: err = %v, want ErrLocked", err)
	}
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second TryLock: err %T is not a *HeldError", err)
	}
	if held.Path != path || held.PID != os.Getpid() {
		t.Errorf("HeldError = %+v, want path %s pid %d", held, path, os.Getpid())
	}
	if held.Since.Before(before) || held.Since.After(time.Now().Add(time.Second)) {
		t.Errorf("HeldError.Since = %v, want about now", held.Since)
	}
	for _, want := range []string{path, "pid " + strconv.Itoa(os.Getpid()), "since"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestUnlockIsIdempotentAndKeepsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	l, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Path() != path {
		t.Errorf("Path() = %q, want %q", l.Path(), path)
	}
	for i := range 3 {
		if err := l.Unlock(); err != nil {
			t.Fatalf("Unlock #%d: %v", i+1, err)
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("lock file gone after Unlock: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("lock file mode = %v, want 0600", got)
	}
	l2, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock after Unlock: %v", err)
	}
	if err := l2.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestTryLockRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "victim")
	if err := os.WriteFile(existing, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, target string
	}{
		{"to an existing file", existing},
		{"dangling", filepath.Join(dir, "would-be-created")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".lock")
			if err := os.Symlink(tt.target, path); err != nil {
				t.Fatal(err)
			}
			l, err := TryLock(path)
			if err == nil {
				_ = l.Unlock()
				t.Fatal("TryLock followed a symbolic link")
			}
			if errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want a symbolic-link refusal naming %s", err, path)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "precious\n" {
		t.Errorf("link target modified: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "would-be-created")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dangling link target was created (err %v)", err)
	}
}

func TestTryLockRefusesNonRegularAndMissingDir(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path, want string
	}{
		{"directory", dir, "lock " + dir},
		{"missing parent", filepath.Join(dir, "no", "such", "x.lock"), "no such file"},
		{"empty path", "", "empty lock path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := TryLock(tt.path)
			if err == nil {
				_ = l.Unlock()
				t.Fatal("TryLock succeeded")
			}
			if errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestAcquireWaitsUntilReleased(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	first, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	contended := make(chan struct{}, 1)
	type result struct {
		l   *Lock
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := acquire(t.Context(), path, withRetryDelay(time.Millisecond), withOnHeld(func(*HeldError) {
			select {
			case contended <- struct{}{}:
			default:
			}
		}))
		done <- result{l, err}
	}()
	<-contended // Acquire has seen the lock held at least once
	select {
	case r := <-done:
		t.Fatalf("Acquire returned while the lock was held: %v", r.err)
	default:
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Acquire: %v", r.err)
	}
	if err := r.l.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestAcquireStopsWhenContextEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	l, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Unlock() })

	ctx, cancel := context.WithCancel(t.Context())
	_, err = acquire(ctx, path, withRetryDelay(time.Hour), withOnHeld(func(*HeldError) { cancel() }))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want context.Canceled and ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("err %q does not name %s", err, path)
	}

	_, err = Acquire(ctx, path) // already cancelled: no attempt at all
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestParseHolder(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	tests := []struct {
		name   string
		in     string
		pid    int
		wantTS bool
	}{
		{"complete", "pid=42 since=" + ts.Format(time.RFC3339Nano) + "\n", 42, true},
		{"empty", "", 0, false},
		{"partial write", "pid=42 since=2026", 0, false},
		{"garbage", "hello world\n", 0, false},
		{"negative pid", "pid=-3\n", 0, false},
		{"pid only", "pid=7\n", 7, false},
		{"bad time", "pid=7 since=yesterday\n", 7, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, since := parseHolder([]byte(tt.in))
			if pid != tt.pid || since.Equal(ts) != tt.wantTS || (!tt.wantTS && !since.IsZero()) {
				t.Errorf("parseHolder(%q) = %d, %v", tt.in, pid, since)
			}
		})
	}
}

func TestHeldErrorMessage(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		err  *HeldError
		want string
	}{
		{"unknown holder", &HeldError{Path: "/l"}, "lockfile: /l: held by another holder"},
		{"pid", &HeldError{Path: "/l", PID: 9}, "lockfile: /l: held by another holder (pid 9)"},
		{"pid and time", &HeldError{Path: "/l", PID: 9, Since: ts}, "lockfile: /l: held by another holder (pid 9 since 2026-01-02T03:04:05Z)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if !errors.Is(tt.err, ErrLocked) {
				t.Error("errors.Is(err, ErrLocked) = false")
			}
		})
	}
}

func BenchmarkTryLockUnlock(b *testing.B) {
	path := filepath.Join(b.TempDir(), "x.lock")
	b.ReportAllocs()
	for b.Loop() {
		l, err := TryLock(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Unlock(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHolderRecordHasFixedLength(t *testing.T) {
	a := holderRecord(1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := holderRecord(4194304, time.Date(2026, 12, 31, 23, 59, 59, 123456789, time.FixedZone("x", 3600)))
	if len(a) != len(b) {
		t.Fatalf("records of different lengths: %q, %q", a, b)
	}
	if pid, since := parseHolder(b); pid != 4194304 || since.Nanosecond() != 123456789 {
		t.Errorf("parseHolder(%q) = %d, %v", b, pid, since)
	}
	if pid, _ := parseHolder(append(a, "garbage of an older, longer record\n"...)); pid != 1 {
		t.Errorf("trailing old text confused the parser: pid %d", pid)
	}
}

// TestHeldSinceFromFileAge: a lock file whose text does not parse (rewritten
// in place by something else) still tells how long the lock has been held:
// from the file's modification time, marked as such.
func TestHeldSinceFromFileAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Unlock() })
	for _, text := range []string{"garbage, not a holder record\n", "", "pid=77 since=yesterday\n"} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		_, err = TryLock(path)
		var held *HeldError
		if !errors.As(err, &held) {
			t.Fatalf("text %q: err = %v, want a *HeldError", text, err)
		}
		if !held.SinceFromFile || !held.Since.Equal(old) {
			t.Errorf("text %q: Since %v (from file: %v), want %v from the file", text, held.Since, held.SinceFromFile, old)
		}
		if !strings.Contains(err.Error(), "last written") {
			t.Errorf("text %q: error %q does not say the time is the file's", text, err)
		}
	}
	// A readable record is believed, not the file's time.
	if err := os.WriteFile(path, holderRecord(4242, time.Now()), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = TryLock(path)
	var held *HeldError
	if !errors.As(err, &held) || held.SinceFromFile || held.PID != 4242 {
		t.Errorf("a readable record: %+v", held)
	}
}
