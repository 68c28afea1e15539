package hooks

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestCommandPreflight(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "reload")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		h    *CommandHook
		want error // nil: no error
	}{
		{"absolute, executable", Command(script, "x"), nil},
		{"found in PATH", Command("sh", "-c", "true"), nil},
		{"relative to the hook's directory", Command("./reload").WithDir(dir), nil},
		{"absolute, missing", Command(filepath.Join(dir, "missing")), fs.ErrNotExist},
		{"not in PATH", Command("renewkit-no-such-program-here"), exec.ErrNotFound},
		{"not executable", Command(plain), fs.ErrPermission},
		{"empty", Command(), errEmptyCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Preflight(t.Context())
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Preflight: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Preflight: %v, want %v", err, tc.want)
			}
		})
	}
}
