//go:build !linux

package renew

import "os"

// readSmall reads the file at path.
func readSmall(path string, _ []byte) ([]byte, error) {
	return os.ReadFile(path)
}

// hasLeftovers reports whether dir holds anything a killed run may have
// left: hidden entries other than the lock file, or a pending key.
func hasLeftovers(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if leftover(n) {
			return true, nil
		}
	}
	return false, nil
}
