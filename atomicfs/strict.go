package atomicfs

import (
	"fmt"
	"io/fs"
	"os"
)

// CheckDir applies the rules [Open] applies to a lineage directory to
// another directory a program trusts, such as the storage root or an ACME
// account directory: it must be a directory (symbolic links are followed),
// not writable by its group or by others, and owned by the effective user.
// A violation is reported with an error matching [ErrInsecure] that names
// dir and the reason; other errors are those of os.Stat.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("atomicfs: check %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory (mode %v)", ErrInsecure, dir, fi.Mode())
	}
	return checkOwnerMode(dir, fi)
}

// CheckFile applies the same rules to a file a program trusts, described by
// fi (from the open file's Stat, so that the file checked is the file
// read): it must be a regular file, not writable by its group or by
// others, owned by the effective user, and without any of the permission
// bits in private (0o077 for a secret nobody else may read, 0o037 to let
// the group read it). A violation is reported with an error matching
// [ErrInsecure] that names path and the reason.
func CheckFile(path string, fi fs.FileInfo, private fs.FileMode) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file (mode %v)", ErrInsecure, path, fi.Mode())
	}
	if err := checkOwnerMode(path, fi); err != nil {
		return err
	}
	if extra := fi.Mode().Perm() & private; extra != 0 {
		return fmt.Errorf("%w: %s has mode %v; remove %v (chmod 0600)", ErrInsecure, path, fi.Mode().Perm(), extra)
	}
	return nil
}
