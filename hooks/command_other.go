//go:build !unix

package hooks

import (
	"errors"
	"fmt"
	"os/exec"
)

// killGroupOnCancel refuses: without process groups a timeout could kill the
// command but not the children it started.
func killGroupOnCancel(*exec.Cmd) error {
	return fmt.Errorf("hooks: commands need process groups, which this platform lacks: %w", errors.ErrUnsupported)
}

// killGroup is never called: killGroupOnCancel refused the command.
func killGroup(int) error { return errors.ErrUnsupported }
