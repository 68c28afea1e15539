package migrate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxFile bounds what is read from the other client's directory: a PEM
// chain or a JSON account file is a few KiB.
const maxFile = 1 << 20

// errUntrusted marks a file or directory that another user owns or may
// write: whoever can write it could plant a key or a certificate.
var errUntrusted = errors.New("not trusted")

// reader reads the other client's files under its root without trusting
// them more than the files deserve.
type reader struct {
	root string // the client's directory, absolute and clean
	euid int
}

// read returns the content of path (which may be a symbolic link, as
// certbot's live/ files are) after checking that it resolves to a regular
// file inside the client's directory and that neither it nor any directory
// from the client's directory down to it is owned by another user (not
// this one, not root) or writable by group or others.
func (r reader) read(path string) ([]byte, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(r.root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("%s: %w: it leads to %s, outside %s", path, errUntrusted, real, r.root)
	}
	// Every directory from the root down to the file, then the file.
	dir := r.root
	if err := r.check(dir, true); err != nil {
		return nil, err
	}
	parts := strings.Split(rel, string(filepath.Separator))
	for _, p := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, p)
		if err := r.check(dir, true); err != nil {
			return nil, err
		}
	}
	if err := r.check(real, false); err != nil {
		return nil, err
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFile)
	}
	return b, nil
}

// check applies the trust rules to one path (not followed).
func (r reader) check(path string, wantDir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	switch {
	case wantDir && !fi.IsDir():
		return fmt.Errorf("%s: not a directory", path)
	case !wantDir && !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != r.euid && st.Uid != 0 {
		return fmt.Errorf("%s: %w: owned by uid %d, neither this user (uid %d) nor root", path, errUntrusted, st.Uid, r.euid)
	}
	if fi.Mode().Perm()&0o022 != 0 && !(fi.IsDir() && fi.Mode()&fs.ModeSticky != 0) {
		return fmt.Errorf("%s: %w: mode %v lets its group or others write it", path, errUntrusted, fi.Mode().Perm())
	}
	return nil
}
