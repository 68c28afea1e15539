//go:build unix

package acmeissuer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/renew"
)

func TestWebrootProviderWritesAndCleansUp(t *testing.T) {
	webroot := t.TempDir()
	p, err := newWebrootProvider(webroot)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Present(t.Context(), "a.example.test", "tok_1", "tok_1.thumb"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(webroot, ".well-known", "acme-challenge", "tok_1")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("token file: %v %v, want mode 0644", fi, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "tok_1.thumb" {
		t.Errorf("token file holds %q", b)
	}
	if err := p.CleanUp(t.Context(), "a.example.test", "tok_1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token file left: %v", err)
	}
	if err := p.Present(t.Context(), "a.example.test", "../escape", "x"); err == nil {
		t.Error("a token with a slash was accepted")
	}
}

// TestWebrootTokenSymlinkNotFollowed: a symbolic link in place of the token
// file is refused, and its target is not truncated.
func TestWebrootTokenSymlinkNotFollowed(t *testing.T) {
	webroot, elsewhere := t.TempDir(), t.TempDir()
	victim := filepath.Join(elsewhere, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(webroot, ".well-known", "acme-challenge")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "tok")); err != nil {
		t.Fatal(err)
	}
	p, _ := newWebrootProvider(webroot)
	if err := p.Present(t.Context(), "a.example.test", "tok", "keyauth"); err == nil {
		t.Error("Present wrote through a symbolic link")
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("the link's target now holds %q", b)
	}
}

// TestWebrootChallengeDirSymlink: a symbolic challenge directory is used
// when this user owns it, and refused (by Present and the preflight, with
// the fix) when another user does.
func TestWebrootChallengeDirSymlink(t *testing.T) {
	webroot, elsewhere := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(webroot, ".well-known"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(webroot, ".well-known", "acme-challenge")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	p, _ := newWebrootProvider(webroot)
	if err := p.Present(t.Context(), "a.example.test", "mine", "keyauth"); err != nil {
		t.Fatalf("a link of this user's: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(elsewhere, "mine")); string(b) != "keyauth" {
		t.Errorf("the token did not reach the link's target: %q", b)
	}

	if os.Geteuid() != 0 {
		t.Skip("making a link owned by another user needs root")
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(elsewhere, "tok")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := p.Present(t.Context(), "a.example.test", "tok", "keyauth")
	if !errors.Is(err, renew.ErrLocal) || !strings.Contains(err.Error(), "symbolic link owned by") || !strings.Contains(err.Error(), "install -d") {
		t.Errorf("Present through another user's link: %v; want a local error naming the fix", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("the link's target now holds %q", b)
	}
	if err := checkWebroot(webroot); !errors.Is(err, renew.ErrLocal) || !strings.Contains(err.Error(), "symbolic link owned by") {
		t.Errorf("the preflight: %v; want the planted link reported", err)
	}
}
