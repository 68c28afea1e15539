//go:build unix

package hooks

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killGroupOnCancel starts cmd in a new process group (its PGID is its PID)
// and makes cancellation send SIGKILL to the whole group, so that children
// the command started in the background die with it.
func killGroupOnCancel(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := killGroup(cmd.Process.Pid)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}

// killGroup sends SIGKILL to the process group pgid, whose leader was our
// child. The kernel does not reuse a PID while a group of that ID has
// members, so this reaches exactly our group, leader or not. Only an empty
// group whose leader os/exec has already reaped could see its number
// reused, which would take the PID space wrapping around within that
// instant. ESRCH (the group is empty) is returned as is.
func killGroup(pgid int) error {
	return syscall.Kill(-pgid, syscall.SIGKILL)
}
