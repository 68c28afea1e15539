package atomicfs

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing f's dirty pages without
// waiting (sync_file_range SYNC_FILE_RANGE_WRITE). It is a hint that makes
// the fsyncs that follow cheaper; it promises no durability by itself, and
// a failure is ignored because the fsync reports any real error.
func startWriteback(f *os.File) {
	const syncFileRangeWrite = 0x2
	_ = syscall.SyncFileRange(int(f.Fd()), 0, 0, syncFileRangeWrite)
}
