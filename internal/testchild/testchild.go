// Package testchild re-executes the running test binary as a helper
// process, for tests that prove crash safety by SIGKILLing a real process
// (DESIGN.md). The helper is an ordinary test function of the same package
// (conventionally TestHelperProcess) that does nothing unless an
// environment variable the parent sets tells it its role; it talks to the
// parent over stdout lines and stdin.
//
// The package is for tests only. It kills only the processes it started,
// by PID.
package testchild

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Command returns a command that runs the test function helper (for
// example "TestHelperProcess") of this test binary, once, with env added to
// the current environment. Its standard streams are unset.
func Command(helper string, env ...string) *exec.Cmd {
	return CommandContext(context.Background(), helper, env...)
}

// CommandContext is Command whose process is killed when ctx ends, as
// exec.CommandContext's is.
func CommandContext(ctx context.Context, helper string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// Child is a started helper process: the parent writes to Stdin and reads
// its stdout line by line with Line; its stderr is the test binary's.
type Child struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser
	out   *bufio.Reader
}

// Start starts helper as Command does. When the test ends, the child's
// stdin is closed and, if it has not been waited for, it is killed and
// reaped.
func Start(t testing.TB, helper string, env ...string) *Child {
	t.Helper()
	cmd := Command(helper, env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill() // our own child, by PID
			_ = cmd.Wait()
		}
	})
	return &Child{Cmd: cmd, Stdin: stdin, out: bufio.NewReader(stdout)}
}

// Pid is the child's process ID.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Line reads the child's next line of output, without surrounding space.
// It fails the test if the child closes its stdout first.
func (c *Child) Line(t testing.TB) string {
	t.Helper()
	s, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from child %d: %v (got %q)", c.Pid(), err, s)
	}
	return strings.TrimSpace(s)
}

// Lines returns the child's output lines (without surrounding space) on a
// channel, closed when the child closes its stdout: for a parent that must
// wait for a line with a deadline or drain a child it kills. Use Lines or
// Line, not both.
func (c *Child) Lines() <-chan string {
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		for {
			s, err := c.out.ReadString('\n')
			if s != "" {
				ch <- strings.TrimSpace(s)
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// Kill sends SIGKILL, waits for the child and fails the test unless it
// died of that signal.
func (c *Child) Kill(t testing.TB) {
	t.Helper()
	if err := c.Cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	if err := c.Cmd.Wait(); !Killed(err) {
		t.Fatalf("child %d did not die of SIGKILL: %v", c.Pid(), err)
	}
}

// Killed reports whether err, from a command's Wait or Run, says the
// process died of SIGKILL.
func Killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
