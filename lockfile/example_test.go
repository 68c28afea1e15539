package lockfile_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/renewkit/renewkit/lockfile"
)

func ExampleTryLock() {
	dir, err := os.MkdirTemp("", "lockfile-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "example.lock")

	l, err := lockfile.TryLock(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Unlock()

	// A second holder, even in the same process, is refused at once.
	_, err = lockfile.TryLock(path)
	fmt.Println("second TryLock held:", errors.Is(err, lockfile.ErrLocked))
	// Output:
	// second TryLock held: true
}

func ExampleAcquire() {
	dir, err := os.MkdirTemp("", "lockfile-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := lockfile.Acquire(ctx, filepath.Join(dir, "example.lock"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("acquired", filepath.Base(l.Path()))
	fmt.Println("unlock:", l.Unlock())
	// Output:
	// acquired example.lock
	// unlock: <nil>
}
