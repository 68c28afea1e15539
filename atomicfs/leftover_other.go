//go:build !linux

package atomicfs

import (
	"io/fs"
	"os"
)

// NeedsRecovery reports whether the lineage directory dir needs a run that
// opens it with [Open] and calls [Store.Recover]: it holds something a killed run may have
// left (a hidden entry other than [LockFile], or the pending key), or
// it is not a directory Open would accept (a symbolic link, or writable by
// group or others; the owner is not known here, so euid is unused). It
// reads names only.
func NeedsRecovery(dir string, _ int) (bool, error) {
	if fi, err := os.Lstat(dir); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		return true, err // a symbolic link: Open refuses it
	}
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Mode().Perm()&0o022 != 0 {
		return true, err
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if leftover(n) {
			return true, nil
		}
	}
	return false, nil
}
