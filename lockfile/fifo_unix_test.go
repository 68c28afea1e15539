//go:build unix

package lockfile

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Regression: a FIFO at the lock path, flocked by someone, hung TryLock
// while it read the holder's text. It is reported held, without a holder.
func TestTryLockHeldFIFODoesNotHang(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(path, syscall.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Skipf("flock on a FIFO: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := TryLock(path)
		done <- err
	}()
	select {
	case err := <-done:
		var he *HeldError
		if !errors.As(err, &he) || he.PID != 0 {
			t.Fatalf("err = %v, want a HeldError without a holder", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("TryLock hangs on a held FIFO")
	}
}
