//go:build !linux

package renew

import (
	"io/fs"

	"github.com/renewkit/renewkit/internal/safefile"
)

// readSmall reads the file at path like loadState does.
func readSmall(path string, _ []byte) ([]byte, error) {
	return safefile.ReadFile(path, maxStateSize)
}

// inode returns 0: the fast path then reads the current link instead.
func inode(fs.FileInfo) uint64 { return 0 }

// ownerOf is unknown on this system.
func ownerOf(fs.FileInfo) (int, bool) { return 0, false }

// canWrite is not known here without writing: assume yes; the write itself
// reports a problem.
func canWrite(string) error { return nil }
