//go:build unix

package acmeissuer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

// Regression (issue 11, item 8): the account directory and its files were
// trusted without checks (a key readable by others drew a warning; an
// AccountDir planted by another user was used). They now get the lineage
// directories' ownership and mode rules and are read without following
// links, without blocking and through a size limit; a violation is refused.
func TestAccountFilesUntrusted(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	base := fastConfig(t, ca)
	if err := newTestIssuer(t, base).Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(base.AccountDir, accountKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := os.ReadFile(filepath.Join(base.AccountDir, accountRecordFile))
	if err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	tests := []struct {
		name     string
		root     bool // needs root (chown)
		spoil    func(t *testing.T, dir string)
		inNew    bool   // New refuses, not Connect
		want     string // in the message
		insecure bool   // matches atomicfs.ErrInsecure
	}{
		{"key readable by others", false, chmod(accountKeyFile, 0o644), false, "has mode -rw-r--r--", true},
		{"key readable by its group", false, chmod(accountKeyFile, 0o640), false, "has mode -rw-r-----", true},
		{"record writable by others", false, chmod(accountRecordFile, 0o666), false, "writable by group and others", true},
		{"key is a symbolic link", false, func(t *testing.T, dir string) {
			elsewhere := filepath.Join(t.TempDir(), "planted.key")
			must(t, os.WriteFile(elsewhere, key, 0o600))
			must(t, os.Remove(filepath.Join(dir, accountKeyFile)))
			must(t, os.Symlink(elsewhere, filepath.Join(dir, accountKeyFile)))
		}, false, "is a symbolic link", true},
		{"record is a FIFO", false, func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, accountRecordFile)))
			must(t, syscall.Mkfifo(filepath.Join(dir, accountRecordFile), 0o600))
		}, false, "not a regular file", true},
		{"record is 1 GiB (sparse)", false, func(t *testing.T, dir string) {
			must(t, os.Truncate(filepath.Join(dir, accountRecordFile), 1<<30))
		}, false, "more than the 65536", false},
		{"AccountDir writable by its group", false, func(t *testing.T, dir string) {
			must(t, os.Chmod(dir, 0o770))
		}, true, "writable by its group", true},
		{"key owned by another user", true, func(t *testing.T, dir string) {
			must(t, os.Chown(filepath.Join(dir, accountKeyFile), 65534, -1))
		}, false, "owned by uid 65534", true},
		{"AccountDir owned by another user", true, func(t *testing.T, dir string) {
			must(t, os.Chown(dir, 65534, -1))
		}, true, "owned by uid 65534", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && !root {
				t.Skip("needs root to chown")
			}
			cfg := base
			cfg.AccountDir = filepath.Join(t.TempDir(), "account")
			must(t, os.Mkdir(cfg.AccountDir, 0o700))
			must(t, os.WriteFile(filepath.Join(cfg.AccountDir, accountKeyFile), key, 0o600))
			must(t, os.WriteFile(filepath.Join(cfg.AccountDir, accountRecordFile), rec, 0o600))
			tt.spoil(t, cfg.AccountDir)
			iss, err := New(t.Context(), cfg)
			if err == nil {
				defer iss.Close()
				if tt.inNew {
					t.Fatal("New accepted the account directory")
				}
				err = iss.Connect(t.Context())
				if !errors.Is(err, backoff.ErrPermanent) || !errors.Is(err, renew.ErrLocal) {
					t.Errorf("Connect = %v, want a permanent local error", err)
				}
			} else if !tt.inNew || !errors.Is(err, renew.ErrConfig) {
				t.Fatalf("New = %v", err)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, atomicfs.ErrInsecure) != tt.insecure {
				t.Fatalf("err = %v, want %q (ErrInsecure %v)", err, tt.want, tt.insecure)
			}
		})
	}
}

func chmod(name string, mode os.FileMode) func(*testing.T, string) {
	return func(t *testing.T, dir string) { must(t, os.Chmod(filepath.Join(dir, name), mode)) }
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
