//go:build !unix

package acmeissuer

import (
	"io/fs"
	"strconv"
)

// noFollow is not available: os.Root still keeps opens inside the webroot.
const noFollow = 0

// fileOwner is unknown here: a symbolic link is never trusted.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }

func userName(uid int) string { return "uid " + strconv.Itoa(uid) }
