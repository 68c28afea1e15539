//go:build unix

package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadFileRefusesSpecialAndOversizedFiles: a FIFO at a lineage file hung
// every reader, and a sparse 1 GiB file was read whole.
func TestReadFileRefusesSpecialAndOversizedFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("small", link); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		path   string
		follow bool
		limit  int64
		want   error
		data   string
	}{
		{name: "fifo", path: fifo, limit: 1 << 20, want: ErrNotRegular},
		{name: "fifo through follow", path: fifo, follow: true, limit: 1 << 20, want: ErrNotRegular},
		{name: "directory", path: dir, limit: 1 << 20, want: ErrNotRegular},
		{name: "sparse 1 GiB", path: sparse, limit: 1 << 20, want: ErrTooLarge},
		{name: "one byte over", path: small, limit: 4, want: ErrTooLarge},
		{name: "at the limit", path: small, limit: 5, data: "hello"},
		{name: "symlink refused", path: link, limit: 1 << 20, want: syscall.ELOOP},
		{name: "symlink followed", path: link, follow: true, limit: 1 << 20, data: "hello"},
		{name: "missing", path: filepath.Join(dir, "nope"), limit: 1, want: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := ReadFile
			if tt.follow {
				read = ReadFileFollow
			}
			b, err := read(tt.path, tt.limit)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.path) {
					t.Fatalf("err = %v, want %v naming %s", err, tt.want, tt.path)
				}
				return
			}
			if err != nil || string(b) != tt.data {
				t.Fatalf("= %q, %v; want %q", b, err, tt.data)
			}
		})
	}
}
