//go:build !unix

package lockfile

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

const (
	openFlag = os.O_CREATE | os.O_RDWR
	noFollow = 0
	nonBlock = 0
)

// supported refuses platforms without O_NOFOLLOW: a lock that may follow an
// attacker's symbolic link is not offered rather than offered with a weaker promise.
func supported() error {
	return fmt.Errorf("no O_NOFOLLOW on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
