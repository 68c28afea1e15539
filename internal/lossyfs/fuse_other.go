//go:build !linux

package lossyfs

import (
	"errors"
	"fmt"
)

// Available reports that lossyfs needs Linux.
func Available() error {
	return fmt.Errorf("lossyfs: needs Linux and /dev/fuse: %w", errors.ErrUnsupported)
}

// FS is a mounted recording file system (Linux only).
type FS struct{}

// Mount fails: lossyfs needs Linux.
func Mount(backing, mountpoint string) (*FS, error) { return nil, Available() }

// Unmount does nothing.
func (f *FS) Unmount() error { return nil }

// Checkpoint does nothing.
func (f *FS) Checkpoint() {}

// Recording returns an empty recording.
func (f *FS) Recording() *Recording { return newRecording(newTree(1, 0o755), nil) }

// Seq returns 0.
func (f *FS) Seq() int64 { return 0 }
