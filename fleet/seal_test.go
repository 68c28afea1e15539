package fleet

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestLoadSealerKeyFile(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0xab}, SealKeySize)
	write := func(name string, data []byte, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rawFile := write("raw", raw, 0o600)
	hexFile := write("hex", []byte(strings.Repeat("ab", SealKeySize)+"\n"), 0o400)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(rawFile, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"raw 32 bytes", rawFile, ""},
		{"hex with newline", hexFile, ""},
		{"group readable", write("group", raw, 0o640), "has mode -rw-r-----"},
		{"short", write("short", raw[:31], 0o600), "want exactly 32 bytes or 64 hex digits"},
		{"bad hex", write("badhex", []byte(strings.Repeat("zz", SealKeySize)), 0o600), "want exactly 32 bytes"},
		{"too long", write("long", bytes.Repeat([]byte("a"), 200), 0o600), "more than"},
		{"symbolic link", link, "is a symbolic link"},
		{"FIFO", fifo(t, filepath.Join(dir, "fifo")), "not a regular file"},
		{"directory", dir, "not a regular file"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadSealer(tc.path)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(s.KeyID()) != 16 {
					t.Errorf("key id %q", s.KeyID())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("LoadSealer: %v, want an error naming %s and saying %q", err, tc.path, tc.want)
			}
			if strings.Contains(err.Error(), "abab") {
				t.Errorf("error shows key material: %v", err)
			}
		})
	}
	// The raw and hex forms of one key are the same key.
	a, _ := LoadSealer(rawFile)
	b, _ := LoadSealer(hexFile)
	if a.KeyID() != b.KeyID() {
		t.Error("raw and hex forms of one key have different ids")
	}
	if _, err := LoadSealer(rawFile, hexFile); err == nil || !strings.Contains(err.Error(), "same key") {
		t.Errorf("the same key twice: %v", err)
	}
}

// Rotation: a value sealed with the old key unseals while the old key is
// listed; new values are sealed with the new key.
func TestSealerRotation(t *testing.T) {
	dir := t.TempDir()
	oldFile, newFile := writeSealKey(t, dir, 1), writeSealKey(t, dir, 2)
	old, err := LoadSealer(oldFile)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := LoadSealer(newFile, oldFile)
	if err != nil {
		t.Fatal(err)
	}
	onlyNew, err := LoadSealer(newFile)
	if err != nil {
		t.Fatal(err)
	}
	v := old.seal([]byte("key"), "/p/v1/bundle/www", "www", "key")
	if got, err := rotated.unseal(v, "/p/v1/bundle/www", "www", "key"); err != nil || string(got) != "key" {
		t.Fatalf("unseal with the old key listed: %q, %v", got, err)
	}
	if _, err := onlyNew.unseal(v, "/p/v1/bundle/www", "www", "key"); !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), old.KeyID()) {
		t.Errorf("unseal without the old key: %v, want a RecordError naming key id %s", err, old.KeyID())
	}
	if w := rotated.seal([]byte("key"), "k", "www", "key"); w.KeyID != onlyNew.KeyID() {
		t.Errorf("sealed with %s, want the new key %s", w.KeyID, onlyNew.KeyID())
	}
	// Bound to where it is stored.
	for _, where := range [][3]string{{"/p/v1/bundle/api", "www", "key"}, {"/p/v1/bundle/www", "api", "key"}, {"/p/v1/bundle/www", "www", "other"}} {
		if _, err := rotated.unseal(v, where[0], where[1], where[2]); !errors.Is(err, errUnseal) {
			t.Errorf("unseal at %v: %v, want refused", where, err)
		}
	}
}

// fifo makes a FIFO at path: reading a seal key from one used to hang Dial.
func fifo(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return path
}

// TestPlainEndpointWithTLSFilesRefused: the etcd client gives an http://
// endpoint no TLS, so configured TLS files were silently ignored (locks and
// certificates in clear).
func TestPlainEndpointWithTLSFilesRefused(t *testing.T) {
	_, err := clientTLS(Config{Endpoints: []string{"https://127.0.0.1:2379", "http://127.0.0.1:2380"}, CAFile: "/nonexistent/ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:2380") || !strings.Contains(err.Error(), "not https://") {
		t.Fatalf("clientTLS = %v, want the plain endpoint refused", err)
	}
	if tc, err := clientTLS(Config{Endpoints: []string{"http://127.0.0.1:2379"}}); tc != nil || err != nil {
		t.Fatalf("no TLS files, plain endpoint: %v, %v; want plain TCP", tc, err)
	}
}
