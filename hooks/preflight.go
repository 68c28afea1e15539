package hooks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Preflight checks, without running it, that the command could be started:
// argv[0] resolves the way Run resolves it (through this process's PATH
// when it has no slash, relative to the hook's directory when it is a
// relative path) to a regular file this process may execute. It reports a
// configuration error Run would report, too. The error wraps
// [exec.ErrNotFound], [io/fs.ErrNotExist] or [io/fs.ErrPermission] where
// one applies.
//
// It does not prove that the command will succeed, only that it exists:
// the Renewer calls it before ordering, so that a missing program fails the
// run before the CA issues a certificate whose reload could not happen.
func (h *CommandHook) Preflight(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if h.err != nil {
		return h.err
	}
	if len(h.argv) == 0 || h.argv[0] == "" {
		return errEmptyCommand
	}
	prog := h.argv[0]
	if h.dir != "" && strings.ContainsRune(prog, filepath.Separator) && !filepath.IsAbs(prog) {
		prog = filepath.Join(h.dir, prog)
	}
	path, err := exec.LookPath(prog)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, exec.ErrDot):
		// Run executes a relative name found through a relative PATH entry
		// the same way exec.Command does: refused.
		return fmt.Errorf("program %q resolves to %s, relative to the current directory: %w", h.argv[0], path, err)
	case !strings.ContainsRune(prog, filepath.Separator):
		return fmt.Errorf("program %q is not in PATH (%s): %w", h.argv[0], os.Getenv("PATH"), exec.ErrNotFound)
	}
	if ee, ok := errors.AsType[*exec.Error](err); ok {
		err = ee.Err // the stat or permission error, which names the path
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("program %s is not executable by this user: %w", prog, err)
	}
	return err
}
