package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// CheckDir applies the rules atomicfs.Open applies to a lineage directory to
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
	return CheckOwnerMode(dir, fi)
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
	if err := CheckOwnerMode(path, fi); err != nil {
		return err
	}
	if extra := fi.Mode().Perm() & private; extra != 0 {
		return fmt.Errorf("%w: %s has mode %v; remove %v (chmod 0600)", ErrInsecure, path, fi.Mode().Perm(), extra)
	}
	return nil
}

// ErrInsecure is matched (with [errors.Is]) by the errors of the checks:
// atomicfs re-exports it.
var ErrInsecure = errors.New("atomicfs: insecure ownership or mode")

// CheckOwnerMode refuses, with ErrInsecure, what fi describes when its group
// or others can write it or another user than the effective one owns it.
func CheckOwnerMode(dir string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		who := "group and others"
		switch perm & 0o022 {
		case 0o020:
			who = "its group"
		case 0o002:
			who = "others"
		}
		fix := "make it 0755 or 0750"
		if !fi.IsDir() {
			fix = "chmod go-w"
		}
		return fmt.Errorf("%w: %s is writable by %s (mode %v); %s", ErrInsecure, dir, who, fi.Mode(), fix)
	}
	if uid, ok := OwnerUID(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not by uid %d running this process", ErrInsecure, dir, uid, os.Geteuid())
	}
	return nil
}

// FileKind names the kind of file m describes, for messages.
func FileKind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	default:
		return "special file"
	}
}
