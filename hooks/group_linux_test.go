package hooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func addLinuxRoles(m map[string]func() error) {
	m["group-timeout"] = helperGroupTimeout
}

const (
	groupDirEnv     = "RENEWKIT_HOOKS_TEST_DIR"
	groupTimeoutEnv = "RENEWKIT_HOOKS_TEST_TIMEOUT"
	// groupExitEnv set to 1 makes the hook's leader exit (status 0) after
	// starting its background child, instead of sleeping itself.
	groupExitEnv = "RENEWKIT_HOOKS_TEST_LEADER_EXITS"
	// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
	prSetChildSubreaper = 36
)

// helperGroupTimeout runs a hook that starts `sleep 1000` in the background
// and then sleeps itself, with a short timeout. The helper is a child
// subreaper, so the background sleep, orphaned when the group leader dies,
// becomes its child: it can wait for it without polling, and then check that
// no process of the group remains.
func helperGroupTimeout() error {
	timeout, err := time.ParseDuration(os.Getenv(groupTimeoutEnv))
	if err != nil {
		return err
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", e)
	}
	pidFile := filepath.Join(os.Getenv(groupDirEnv), "pids")
	leaderExits := os.Getenv(groupExitEnv) == "1"
	script := `sleep 1000 & echo "$$ $!" > "$PIDFILE"; exec sleep 1000`
	if leaderExits {
		script = `sleep 1000 & echo "$$ $!" > "$PIDFILE"; exit 0`
	}
	// The wait delay outlasts the timeout: the timeout must kill the group
	// even when the leader has exited and Wait is only waiting for the
	// output to close.
	h := Command("sh", "-c", script).WithEnv("PIDFILE=" + pidFile).
		WithTimeout(timeout).WithWaitDelay(10 * timeout)
	start := time.Now()
	out, err := h.run(context.Background(), Event{})
	switch {
	case leaderExits && err == nil:
		if !out.Lingered {
			return errors.New("Run succeeded with Lingered = false; the group was killed at the timeout")
		}
	case leaderExits && errors.Is(err, errTimeout):
		// The timeout fired before the leader exited: checked below, but
		// the success path was not exercised.
	case !errors.Is(err, errTimeout) || !errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("Run = %v, want errTimeout", err)
	}
	elapsed := time.Since(start)

	// Reap the orphans. Only a process that died can be reaped, so this
	// returns once the whole group is dead; the deadline below only turns a
	// failure (a survivor of the timeout) into a report instead of a hang.
	reaped := make(chan []int, 1)
	go func() {
		var pids []int
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, 0, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil { // ECHILD: no children left
				reaped <- pids
				return
			}
			pids = append(pids, pid)
		}
	}()
	var pids []int
	select {
	case pids = <-reaped:
	case <-time.After(time.Minute):
		return errors.New("processes of the hook still alive a minute after its timeout: the group was not killed")
	}

	data, err := os.ReadFile(pidFile)
	var pgid, child int
	if err != nil || func() bool { n, _ := fmt.Sscan(string(data), &pgid, &child); return n != 2 }() {
		// The timeout fired before the hook wrote its PIDs.
		return fmt.Errorf("%w: pid file %q (%v)", errInconclusive, data, err)
	}
	if !slices.Contains(pids, child) {
		return fmt.Errorf("background child %d not among the reaped orphans %v", child, pids)
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill(-%d, 0) = %v after the timeout, want ESRCH: a process of the group survived", pgid, err)
	}
	fmt.Printf("group %d killed after %v (timeout %v); reaped orphan %d\n", pgid, elapsed.Round(time.Millisecond), timeout, child)
	if leaderExits && err != nil {
		return fmt.Errorf("%w: the timeout fired before the leader exited", errInconclusive)
	}
	return nil
}

// TestCommandTimeoutKillsProcessGroup checks, in a helper process, that a
// timeout kills the hook's background children too (see
// helperGroupTimeout). When the timeout fires before the hook has started
// its child, the run proves nothing and is repeated with a longer timeout.
func TestCommandTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	testGroupTimeout(t, "0")
}

// Regression (issue 11, item 12): a hook whose leader exited, leaving a
// background child holding the output, with a timeout shorter than the
// wait delay, reported "process group killed" while the group survived; the
// hook never succeeded and each replay leaked a process. The timeout now
// kills the group, and the run succeeds (the leader exited 0) as Lingered.
func TestCommandTimeoutKillsGroupAfterLeaderExited(t *testing.T) {
	t.Parallel()
	testGroupTimeout(t, "1")
}

func testGroupTimeout(t *testing.T, leaderExits string) {
	for timeout := 200 * time.Millisecond; ; timeout *= 2 {
		cmd := helperCommand(t.Context(), "group-timeout", groupExitEnv+"="+leaderExits,
			groupDirEnv+"="+t.TempDir(), groupTimeoutEnv+"="+timeout.String())
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == helperInconclusive && timeout < 30*time.Second {
			t.Logf("timeout %v too short to start the child; retrying: %s", timeout, out)
			continue
		}
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		t.Logf("%s", out)
		return
	}
}
