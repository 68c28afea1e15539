//go:build unix

package lockfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/renewkit/renewkit/internal/testchild"
)

// Environment of the helper process (see TestHelperProcess).
const (
	envRole  = "RENEWKIT_LOCKFILE_HELPER"
	envPath  = "RENEWKIT_LOCKFILE_PATH"
	envIters = "RENEWKIT_LOCKFILE_ITERS"
)

// TestHelperProcess is not a test: it is the child process of the tests below,
// selected by the RENEWKIT_LOCKFILE_HELPER environment variable.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(envRole)
	if role == "" {
		t.Skip("helper process only")
	}
	path := os.Getenv(envPath)
	switch role {
	case "hold":
		// Take the lock, say so, then wait (on stdin) to be killed.
		l, err := TryLock(path)
		if err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(2)
		}
		fmt.Printf("locked %d\n", os.Getpid())
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = l.Unlock()
		os.Exit(0)
	case "race":
		os.Exit(race(path))
	}
	os.Exit(3)
}

// race waits for "go" on stdin, then tries the lock iters times. While holding it,
// it creates a witness file with O_EXCL: if the file already exists, the other
// process holds the lock at the same time and mutual exclusion is broken.
func race(path string) int {
	iters, _ := strconv.Atoi(os.Getenv(envIters))
	witness := path + ".witness"
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Printf("error stdin: %v\n", err)
		return 2
	}
	got, busy := 0, 0
	for range iters {
		l, err := TryLock(path)
		if errors.Is(err, ErrLocked) {
			busy++
			continue
		}
		if err != nil {
			fmt.Printf("error %v\n", err)
			return 2
		}
		got++
		f, err := os.OpenFile(witness, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			fmt.Printf("VIOLATION %v\n", err)
			return 1
		}
		_ = f.Close()
		if err := os.Remove(witness); err != nil {
			fmt.Printf("error %v\n", err)
			return 2
		}
		if err := l.Unlock(); err != nil {
			fmt.Printf("error %v\n", err)
			return 2
		}
	}
	fmt.Printf("done got=%d busy=%d\n", got, busy)
	return 0
}

func TestLockIsReleasedWhenHolderIsKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	c := testchild.Start(t, "TestHelperProcess", envRole+"=hold", envPath+"="+path)
	if got, want := c.Line(t), fmt.Sprintf("locked %d", c.Pid()); got != want {
		t.Fatalf("child said %q, want %q", got, want)
	}

	_, err := TryLock(path)
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("TryLock while the child holds it: err = %v, want *HeldError", err)
	}
	if held.PID != c.Pid() {
		t.Errorf("HeldError.PID = %d, want the child's %d", held.PID, c.Pid())
	}

	c.Kill(t)

	l, err := TryLock(path) // no wait, no cleanup: the kernel released it
	if err != nil {
		t.Fatalf("TryLock right after the holder was killed: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestTwoProcessesRacingTryLockNeverBothHoldIt(t *testing.T) {
	const iters = 1000
	path := filepath.Join(t.TempDir(), "x.lock")
	env := []string{envRole + "=race", envPath + "=" + path, envIters + "=" + strconv.Itoa(iters)}
	children := []*testchild.Child{testchild.Start(t, "TestHelperProcess", env...), testchild.Start(t, "TestHelperProcess", env...)}
	for _, c := range children { // start both at once
		if _, err := io.WriteString(c.Stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	totalGot, totalBusy := 0, 0
	for i, c := range children {
		line := c.Line(t)
		if err := c.Cmd.Wait(); err != nil {
			t.Errorf("child %d: %v (%s)", i, err, line)
		}
		var got, busy int
		if _, err := fmt.Sscanf(line, "done got=%d busy=%d", &got, &busy); err != nil {
			t.Fatalf("child %d said %q", i, line)
		}
		if got+busy != iters {
			t.Errorf("child %d: got %d + busy %d != %d", i, got, busy, iters)
		}
		totalGot += got
		totalBusy += busy
	}
	if totalGot == 0 {
		t.Error("nobody ever got the lock")
	}
	t.Logf("%d attempts: %d acquisitions, %d found it held; no overlap", 2*iters, totalGot, totalBusy)
}
