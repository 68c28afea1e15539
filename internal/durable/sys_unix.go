//go:build unix

package durable

import (
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// Supported returns nil where the package's promises hold (Unix).
func Supported() error { return nil }

// SyncDir fsyncs the directory dir, making the entries created, renamed or
// removed in it durable. Callers give the reason at the call site.
func SyncDir(dir string) error {
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
