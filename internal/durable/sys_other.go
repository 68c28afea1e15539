//go:build !unix

package durable

import (
	"errors"
	"fmt"
	"runtime"
)

// Supported refuses platforms where directory fsync, rename-over-a-symlink and
// renameio are not available: no promise is better than a broken one.
func Supported() error {
	return fmt.Errorf("atomic, durable file writes are not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// SyncDir fails: see Supported.
func SyncDir(string) error { return Supported() }

func newPendingFile(string) (pendingFile, error) { return nil, Supported() }
