//go:build unix

package acmeissuer

import (
	"io/fs"
	"os/user"
	"strconv"
	"syscall"
)

// noFollow refuses a symbolic link as the last component of an open.
const noFollow = syscall.O_NOFOLLOW

// fileOwner returns the owner's uid of fi.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// userName names uid: its user name, else "uid N".
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}
