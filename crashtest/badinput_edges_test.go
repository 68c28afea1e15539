package crashtest_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"github.com/renewkit/renewkit/atomicfs"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/internal/testpki"
	"github.com/renewkit/renewkit/lockfile"
)

// edgeBadCases are the bad inputs of issue 11 (the edges of the promise):
// special and huge files, a symbolic-link lineage, planted or far-numbered
// generations, secrets in hook output, a lock holder that never lets go.
var edgeBadCases = []badCase{
	{
		name: "state.json is a FIFO",
		damage: func(t *testing.T, e *badEnv) {
			path := filepath.Join(e.dir, "state.json")
			remove(t, path)
			mkfifo(t, path)
		},
		code: 1, served: unchanged,
		msgs: []string{"state.json", "not a regular file"},
		check: func(t *testing.T, e *badEnv, r run) {
			for _, mode := range []string{"-status", "-dry-run"} {
				if r := e.run(nil, mode); r.code != 1 || !strings.Contains(r.stdout+r.stderr, "not a regular file") {
					t.Errorf("%s with a FIFO state.json: %v", mode, r)
				}
			}
		},
	},
	{
		name:   "state.json a sparse 1 GiB file",
		damage: func(t *testing.T, e *badEnv) { sparseFile(t, filepath.Join(e.dir, "state.json"), 1<<30) },
		code:   0, served: unchanged,
		msgs: []string{"state.json", "rebuilding", "not_due"},
		check: func(t *testing.T, e *badEnv, r run) {
			// A child's rusage counts the peak RSS of this process too: Go's
			// os/exec starts children with vfork (CLONE_VM), and Linux
			// records the old address space's high-water mark at exec. This
			// process grows (the fleet tests run etcd in it), so the bound
			// is above its own peak; reading 1 GiB still exceeds it while
			// that peak stays well under 1 GiB.
			limit := max(200<<20, selfPeakRSS(t)+64<<20)
			if r.maxRSS > limit {
				t.Errorf("the run read the 1 GiB state.json: peak RSS %d MiB (this process's own peak: %d MiB)", r.maxRSS>>20, selfPeakRSS(t)>>20)
			}
		},
	},
	{
		name: "pending.key is a FIFO",
		damage: func(t *testing.T, e *badEnv) {
			mkfifo(t, filepath.Join(e.dir, "pending.key"))
		},
		code: 0, served: unchanged,
		msgs: []string{"unusable order journal", "pending.key", "not_due"},
	},
	{
		name: "the lineage directory is a symbolic link",
		damage: func(t *testing.T, e *badEnv) {
			real := e.dir + "-real"
			if err := os.Rename(e.dir, real); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Base(real), e.dir); err != nil {
				t.Fatal(err)
			}
		},
		code: 1, served: unchanged,
		msgs: []string{"www", "symbolic link"},
	},
	{
		name:   "generations/ writable by others",
		damage: func(t *testing.T, e *badEnv) { chmod(t, filepath.Join(e.dir, "generations"), 0o777) },
		args:   []string{"-force", "all"},
		code:   1, served: unchanged,
		msgs: []string{"generations", "writable by"},
	},
	{
		// Someone who could write generations/ once planted a complete,
		// self-consistent generation with their own key; a lost state.json
		// sends the next run through recovery.
		name: "a planted generation newer than current",
		damage: func(t *testing.T, e *badEnv) {
			plantGeneration(t, filepath.Join(e.dir, "generations", "000002"), "www.example.test")
			remove(t, filepath.Join(e.dir, "state.json"))
		},
		code: 0, served: unchanged,
		msgs: []string{"not rolling forward", "000002"},
	},
	{
		name: "a generation numbered near the integer maximum",
		damage: func(t *testing.T, e *badEnv) {
			if err := os.Mkdir(filepath.Join(e.dir, "generations", "9223372036854775807"), 0o755); err != nil {
				t.Fatal(err)
			}
		},
		args: []string{"-force", "all"},
		code: 0, served: replaced,
		msgs: []string{"renewed"},
	},
	{
		name: "a failing hook prints a bearer token",
		damage: func(t *testing.T, e *badEnv) {
			// The token is in the output only (the argv, which is the hook's
			// name in the journal, comes from the configuration).
			e.hooks = `[["/bin/sh", "-c", "t=t0ken; echo \"> Authorization: Bearer s3cr3t-$t\"; echo '< HTTP/1.1 401'; exit 1"]]`
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: replaced,
		msgs: []string{"401"},
		check: func(t *testing.T, e *badEnv, r run) {
			path := filepath.Join(e.dir, "state.json")
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("state.json has mode %v, want 0600", fi.Mode().Perm())
			}
			// Issue 24: the output is not persisted at all (state.json is
			// shown by -status and /readyz), only where to find it.
			if b := readFile(t, path); strings.Contains(string(b), "s3cr3t-t0ken") || strings.Contains(string(b), "bytes):") || !strings.Contains(string(b), "in the log") {
				t.Errorf("state.json keeps the hook's output (or does not say where it is):\n%s", b)
			}
		},
	},
	{
		// A run stopped (SIGSTOP) while holding the lock, three hours ago.
		name: "a lock holder stopped for hours",
		damage: func(t *testing.T, e *badEnv) {
			path := filepath.Join(e.dir, atomicfs.LockFile)
			l, err := lockfile.TryLock(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Unlock() })
			since := time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339Nano)
			writeFile(t, path, fmt.Appendf(nil, "pid=%-10d since=%-30s\n", 4242, since))
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"lock_stuck", "pid 4242", "lock_holder_pid"},
	},
	{
		name: "the CA asks to retry after ten years",
		damage: func(t *testing.T, e *badEnv) {
			t.Cleanup(e.ca.Inject(testacme.RateLimited(testacme.EndpointNewOrder, 0, 10*365*24*time.Hour)))
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"rateLimited", "clamped"},
		check: func(t *testing.T, e *badEnv, r run) {
			var st struct {
				RetryNotBefore time.Time `json:"retry_not_before"`
			}
			if err := json.Unmarshal(readFile(t, filepath.Join(e.dir, "state.json")), &st); err != nil {
				t.Fatal(err)
			}
			if limit := time.Now().Add(24 * time.Hour); st.RetryNotBefore.After(limit) || st.RetryNotBefore.IsZero() {
				t.Errorf("retry_not_before %v, want within a day", st.RetryNotBefore)
			}
		},
	},
	{
		// Room for the order journal and state.json, not for the five
		// files of a generation: the failed install must be counted like
		// any failed attempt, with the journal kept for the next run.
		name:   "disk nearly full",
		config: smallDisk,
		damage: func(t *testing.T, e *badEnv) {
			fillDisk(t, e)
			filler := filepath.Join(e.root, "filler")
			fi, err := os.Stat(filler)
			if err != nil {
				t.Fatal(err)
			}
			sparseFile(t, filler, fi.Size()-12<<10)
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"no space left on device", "failed"},
		check: func(t *testing.T, e *badEnv, r run) {
			var st struct {
				Failures       int       `json:"failures"`
				LastError      string    `json:"last_error"`
				RetryNotBefore time.Time `json:"retry_not_before"`
			}
			if err := json.Unmarshal(readFile(t, filepath.Join(e.dir, "state.json")), &st); err != nil {
				t.Fatal(err)
			}
			if st.Failures != 1 || !strings.Contains(st.LastError, "no space left") || !st.RetryNotBefore.After(time.Now()) {
				t.Errorf("the failed install is not counted: %+v", st)
			}
			if _, err := os.Stat(filepath.Join(e.dir, "pending.key")); err != nil {
				t.Errorf("the order journal is gone: %v", err)
			}
			if r2 := e.run(nil, "-status"); !strings.Contains(r2.stdout, "no space left") {
				t.Errorf("-status does not show the failure:\n%v", r2)
			}
		},
	},
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// plantGeneration writes a complete generation for name at dir: a
// self-signed certificate and its key, in the five files, with the modes
// Install gives them.
func plantGeneration(t *testing.T, dir, name string) {
	t.Helper()
	leaf, err := testpki.SelfSigned(&x509.Certificate{
		SerialNumber: big.NewInt(666),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(80 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, keyPEM := leaf.CertPEM, leaf.KeyPEM
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]struct {
		b    []byte
		mode os.FileMode
	}{
		"cert.pem": {cert, 0o644}, "chain.pem": {nil, 0o644}, "fullchain.pem": {cert, 0o644},
		"privkey.pem": {keyPEM, 0o600}, "combined.pem": {append(append([]byte{}, keyPEM...), cert...), 0o600},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), f.b, f.mode); err != nil {
			t.Fatal(err)
		}
	}
}

// selfPeakRSS is this process's peak resident set size in bytes (VmHWM in
// /proc/self/status), 0 where that is not available.
func selfPeakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("/proc/self/status: VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	return 0
}
