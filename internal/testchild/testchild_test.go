//go:build unix

package testchild

import (
	"fmt"
	"io"
	"os"
	"testing"
)

const roleEnv = "TESTCHILD_ROLE"

// TestHelperProcess is the child of the tests below.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(roleEnv) {
	case "":
		t.Skip("helper process")
	case "echo":
		b, _ := io.ReadAll(os.Stdin)
		fmt.Printf("ready %d\ngot %s\n", os.Getpid(), b)
		os.Exit(0)
	case "hang":
		fmt.Println("ready")
		select {}
	}
	os.Exit(2)
}

func TestLineAndStdin(t *testing.T) {
	c := Start(t, "TestHelperProcess", roleEnv+"=echo")
	io.WriteString(c.Stdin, "hello")
	c.Stdin.Close()
	if got, want := c.Line(t), fmt.Sprintf("ready %d", c.Pid()); got != want {
		t.Fatalf("first line %q, want %q", got, want)
	}
	if got := c.Line(t); got != "got hello" {
		t.Fatalf("second line %q", got)
	}
	if err := c.Cmd.Wait(); err != nil || Killed(err) {
		t.Fatalf("Wait: %v", err)
	}
}

func TestKill(t *testing.T) {
	c := Start(t, "TestHelperProcess", roleEnv+"=hang")
	if got := c.Line(t); got != "ready" {
		t.Fatalf("line %q", got)
	}
	c.Kill(t) // fails the test unless the child died of SIGKILL
	if ps := c.Cmd.ProcessState; ps == nil || ps.Success() {
		t.Fatalf("child state after Kill: %v", ps)
	}
}

func TestKilledIsOnlySIGKILL(t *testing.T) {
	if Killed(nil) {
		t.Error("Killed(nil)")
	}
	if err := Command("TestHelperProcess", roleEnv+"=bogus").Run(); err == nil || Killed(err) {
		t.Errorf("exit status 2 counted as killed: %v", err)
	}
}
