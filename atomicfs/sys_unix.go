//go:build unix

package atomicfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/google/renameio/v2"
)

func supported() error { return nil }

// syncDir fsyncs the directory dir, making the entries created, renamed or
// removed in it durable. Callers give the reason at the call site.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// newPendingFile starts a replacement of path. The temporary file is created
// beside path (WithTempDir: without it renameio may use TMPDIR, possibly on
// another file system, where the final rename is not atomic), with mode 0600 or
// less, and chmodded to exactly 0600 before anything else happens
// (WithStaticPermissions: renameio.WriteFile would keep an existing file's looser
// mode instead). The caller sets the group and the final mode before writing.
func newPendingFile(path string) (pendingFile, error) {
	return renameio.NewPendingFile(path,
		renameio.WithTempDir(filepath.Dir(path)),
		renameio.WithStaticPermissions(0o600))
}

// ownerUID returns the owner of the file described by fi.
func ownerUID(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// Flags of ReadFile's open: never block on a FIFO or a device, and refuse a
// symbolic link as the last component where asked.
const (
	openNonBlock = syscall.O_NONBLOCK
	openNoFollow = syscall.O_NOFOLLOW
)

// isSymlinkErr reports whether err is an open's refusal (O_NOFOLLOW) to
// follow a symbolic link.
func isSymlinkErr(err error) bool { return errors.Is(err, syscall.ELOOP) }
