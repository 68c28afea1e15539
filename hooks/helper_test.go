package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/renewkit/renewkit/internal/testchild"
)

// helperEnv selects the role of the test binary when it is re-executed as a
// helper process (the standard os/exec test pattern).
const helperEnv = "RENEWKIT_HOOKS_TEST_HELPER"

// Exit statuses of helper processes.
const (
	helperFailed       = 3
	helperInconclusive = 4
)

// TestHelperProcess is not a test: it is the entry point of helper processes
// started by other tests. The roles are in helper_*_test.go files.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("entry point for helper processes")
	}
	roles := map[string]func() error{}
	addPlatformRoles(roles)
	f, ok := roles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "helper: unknown role %q\n", role)
		os.Exit(helperFailed)
	}
	if err := f(); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		if errors.Is(err, errInconclusive) {
			os.Exit(helperInconclusive)
		}
		os.Exit(helperFailed)
	}
	os.Exit(0)
}

var errInconclusive = errors.New("inconclusive")

// helperCommand returns a command re-executing the test binary in role.
func helperCommand(ctx context.Context, role string, env ...string) *exec.Cmd {
	return testchild.CommandContext(ctx, "TestHelperProcess", append([]string{helperEnv + "=" + role}, env...)...)
}

// writeFileAtomic is the persistence the journal's caller provides (atomicfs
// in renew): temp file in the same directory, fsync, rename, fsync the
// directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileJournal persists a Journal as JSON at path.
type fileJournal string

func (p fileJournal) persist(j *Journal) error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return writeFileAtomic(string(p), data)
}

func (p fileJournal) load() (*Journal, error) {
	var j Journal
	data, err := os.ReadFile(string(p))
	if errors.Is(err, fs.ErrNotExist) {
		return &j, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &j, nil
}
