//go:build !unix

package acmeissuer

import (
	"errors"
	"io/fs"
	"os"
)

// openNoFollow opens path for reading after refusing a symbolic link (not
// atomically: this platform has no O_NOFOLLOW).
func openNoFollow(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errSymlink}
	}
	return os.Open(path)
}

func isSymlinkErr(err error) bool { return errors.Is(err, errSymlink) }

// errSymlink is openNoFollow's error for a symbolic link.
var errSymlink = errors.New("symbolic link")
