//go:build !linux

package atomicfs

import "os"

// startWriteback is a no-op where sync_file_range does not exist; the
// fsyncs that follow do the work.
func startWriteback(*os.File) {}
