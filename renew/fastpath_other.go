//go:build !linux

package renew

import (
	"io/fs"
	"os"

	"github.com/renewkit/renewkit/atomicfs"
)

// readSmall reads the file at path like loadState does.
func readSmall(path string, _ []byte) ([]byte, error) {
	return atomicfs.ReadFile(path, maxStateSize)
}

// hasLeftovers reports whether dir needs the full run: it holds anything a
// killed run may have left (hidden entries other than the lock file, or a
// pending key), or it is writable by group or others (atomicfs refuses it;
// the full run reports that).
func hasLeftovers(dir string, _ int) (bool, error) {
	if fi, err := os.Lstat(dir); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		return true, err // a symbolic link: atomicfs.Open refuses it
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

// inode returns 0: the fast path then reads the current link instead.
func inode(fs.FileInfo) uint64 { return 0 }

// ownerOf is unknown on this system.
func ownerOf(fs.FileInfo) (int, bool) { return 0, false }

// canWrite is not known here without writing: assume yes; the write itself
// reports a problem.
func canWrite(string) error { return nil }
