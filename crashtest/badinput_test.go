package crashtest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
)

// What must become of the installed certificate in a bad-input case.
const (
	// unchanged: the served files are byte for byte what they were.
	unchanged = "unchanged"
	// replaced: the installed certificate was the bad input; a new one,
	// whole, is served instead.
	replaced = "replaced"
	// kept: what was damaged is how the generation is served (current);
	// the generation itself must still be on disk, whole and unchanged.
	kept = "kept"
)

// badEnv is a lineage installed by a normal run, about to be damaged.
type badEnv struct {
	*setup
	ca *testacme.Server
	// dir is the lineage directory; gen its current generation directory.
	dir, gen string
	// old is what was served before the damage.
	old served.Snapshot
	// orders is how many orders the CA had created before the damage.
	orders int
}

// blinkLifetime is the lifetime of the certificate that "the certificate
// expired" lets expire: long enough that the run that installs it verifies
// it before it ends (Pebble's not_after is lifetime−1 s after a not_before
// truncated to the second, so up to 2 s less is left at issuance) on a
// machine whose load delays that run by seconds, short enough to wait for.
const blinkLifetime = 12 * time.Second

// badCase is one bad input.
type badCase struct {
	name string
	// caOpts changes the CA's options.
	caOpts func(*testacme.Options)
	// config changes the setup before the lineage is installed.
	config func(t *testing.T, e *badEnv)
	// damage is done to the installed lineage (or the configuration).
	damage func(t *testing.T, e *badEnv)
	// args of the run after the damage.
	args []string
	code int
	// msgs must all appear in the run's standard error.
	msgs []string
	// served is what must become of the installed certificate: unchanged
	// or replaced.
	served string
	// check inspects the run further.
	check func(t *testing.T, e *badEnv, r run)
	// known names the entry of knownIssues that makes this case fail
	// today: its failures are logged, not reported.
	known string
}

var badCases = []badCase{
	{
		name:   "cert.pem truncated",
		damage: func(t *testing.T, e *badEnv) { truncateHalf(t, filepath.Join(e.gen, "cert.pem")) },
		code:   0, served: replaced,
		msgs: []string{"installed certificate unusable", "renewed"},
	},
	{
		name: "cert.pem garbage",
		damage: func(t *testing.T, e *badEnv) {
			writeFile(t, filepath.Join(e.gen, "cert.pem"), []byte("this is not a certificate\n"))
		},
		code: 0, served: replaced,
		msgs: []string{"installed certificate unusable", "renewed"},
	},
	{
		name: "privkey.pem holds another key",
		damage: func(t *testing.T, e *badEnv) {
			writeFile(t, filepath.Join(e.gen, "privkey.pem"), newKeyPEM(t))
		},
		code: 0, served: replaced,
		msgs:  []string{"renewed"},
		known: "key-unchecked",
	},
	{
		name:   "privkey.pem missing from the current generation",
		damage: func(t *testing.T, e *badEnv) { remove(t, filepath.Join(e.gen, "privkey.pem")) },
		code:   0, served: replaced,
		msgs:  []string{"renewed"},
		known: "key-unchecked",
	},
	{
		name: "the certificate expired",
		// The installed certificate comes from a profile of a few seconds
		// (each run must verify what it got before it expires: blinkLifetime
		// leaves that run most of it, on a loaded machine too); the renewal
		// from the 90-day "default", so that no amount of load can expire it
		// before its run verifies it (a renewal of that same short profile
		// was issued with not_after at the instant of issuance, and failed
		// "no usable certificate installed"). Names and key type are
		// unchanged, so the renewal's reason is the expiry.
		caOpts: func(o *testacme.Options) {
			o.Profiles = map[string]time.Duration{"shortlived": 0, "blink": blinkLifetime}
		},
		config: func(t *testing.T, e *badEnv) {
			e.certs[0].extra = `profile = "blink"`
			e.writeConfig()
		},
		damage: func(t *testing.T, e *badEnv) {
			// Wait for the installed certificate to expire (NotAfter is
			// inclusive), then order from the long profile.
			time.Sleep(time.Until(e.old.NotAfter().Add(time.Second)))
			e.certs[0].extra = `profile = "default"`
			e.writeConfig()
		},
		code: 0, served: replaced,
		msgs: []string{"expired", "renewed"},
		check: func(t *testing.T, e *badEnv, r run) {
			snap, err := served.Check(e.dir)
			if err != nil {
				return // reported by the caller
			}
			if life := snap.NotAfter().Sub(e.old.NotAfter()); life < time.Hour {
				t.Errorf("the renewal expires %v after the expired certificate: not from the default profile", life)
			}
		},
	},
	{
		name: "a certificate for other names",
		config: func(t *testing.T, e *badEnv) {
			e.certs = append(e.certs, certSpec{name: "other", domains: []string{"other.example.test"}})
			e.writeConfig()
		},
		damage: func(t *testing.T, e *badEnv) {
			// Another lineage's whole generation in place of this one's.
			other := filepath.Join(e.lineage("other"), "current")
			for _, f := range served.Files() {
				b, err := os.ReadFile(filepath.Join(other, f))
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(e.gen, f), b)
			}
		},
		args: []string{"-cert", "www"},
		code: 0, served: replaced,
		msgs: []string{"names", "renewed"},
	},
	{
		name:   "state.json empty",
		damage: func(t *testing.T, e *badEnv) { writeFile(t, filepath.Join(e.dir, "state.json"), nil) },
		code:   0, served: unchanged,
		msgs: []string{"state.json", "rebuilding", "not_due"},
	},
	{
		name: "state.json garbage",
		damage: func(t *testing.T, e *badEnv) {
			writeFile(t, filepath.Join(e.dir, "state.json"), []byte("{\"version\": 1, \"current\": [garbage"))
		},
		code: 0, served: unchanged,
		msgs: []string{"state.json", "rebuilding", "not_due"},
	},
	{
		// Nothing is served any more (that is the damage): the run says so
		// and points current back at the newest complete generation.
		name: "current points to a missing directory",
		damage: func(t *testing.T, e *badEnv) {
			replaceSymlink(t, filepath.Join(e.dir, "current"), "generations/000099")
		},
		code:   0,
		msgs:   []string{filepath.Join("www", "current") + " -> generations/000099 is dangling", "rolling forward", "recovered"},
		served: unchanged,
	},
	{
		name: "current is a regular file",
		damage: func(t *testing.T, e *badEnv) {
			remove(t, filepath.Join(e.dir, "current"))
			writeFile(t, filepath.Join(e.dir, "current"), []byte("generations/000001\n"))
		},
		code:   1,
		served: kept,
		msgs:   []string{filepath.Join("www", "current") + " is a regular file", "not a symbolic link", "move it away"},
		check: func(t *testing.T, e *badEnv, r run) {
			// The operator's file is not ours to delete, and nothing else
			// was issued or installed.
			if fi, err := os.Lstat(filepath.Join(e.dir, "current")); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("current was replaced or removed: %v", err)
			}
		},
	},
	{
		name: "fullchain.pem is a regular file (normal run)",
		damage: func(t *testing.T, e *badEnv) {
			b := readFile(t, filepath.Join(e.dir, "fullchain.pem"))
			remove(t, filepath.Join(e.dir, "fullchain.pem"))
			writeFile(t, filepath.Join(e.dir, "fullchain.pem"), b)
		},
		code: 1, served: unchanged,
		msgs: []string{filepath.Join("www", "fullchain.pem") + " is a regular file", "move it away", "failed"},
	},
	{
		name: "fullchain.pem is a regular file (forced renewal)",
		damage: func(t *testing.T, e *badEnv) {
			b := readFile(t, filepath.Join(e.dir, "fullchain.pem"))
			remove(t, filepath.Join(e.dir, "fullchain.pem"))
			writeFile(t, filepath.Join(e.dir, "fullchain.pem"), b)
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{filepath.Join("www", "fullchain.pem") + " is a regular file", "move it away", "failed"},
	},
	{
		name:   "lineage directory writable by others (normal run)",
		damage: func(t *testing.T, e *badEnv) { chmod(t, e.dir, 0o777) },
		code:   1, served: unchanged,
		msgs: []string{"www", "writable by", "0755"},
	},
	{
		name:   "lineage directory writable by others",
		damage: func(t *testing.T, e *badEnv) { chmod(t, e.dir, 0o777) },
		args:   []string{"-force", "all"},
		code:   1, served: unchanged,
		msgs: []string{"www", "writable by", "0755"},
	},
	{
		name:   "read-only storage root",
		damage: readOnlyRoot,
		args:   []string{"-force", "all"},
		code:   1, served: unchanged,
		msgs: []string{"read-only file system", "failed"},
	},
	{
		name:   "disk full",
		config: smallDisk,
		damage: fillDisk,
		args:   []string{"-force", "all"},
		code:   1, served: unchanged,
		msgs: []string{"no space left on device", "failed"},
		check: func(t *testing.T, e *badEnv, r run) {
			// Once there is room again, a normal run cleans up and is fine.
			remove(t, filepath.Join(e.root, "filler"))
			r2 := e.run(nil)
			if r2.code != 0 {
				t.Errorf("the run after the disk was freed: %v", r2)
			}
			if left := leftovers(e.dir); len(left) > 0 {
				t.Errorf("left behind after the disk was freed: %v", left)
			}
		},
	},
	{
		// The preflight finds the missing program before anything is
		// ordered: no certificate is issued that could not be deployed.
		name: "hook binary missing",
		damage: func(t *testing.T, e *badEnv) {
			e.hooks = `[["/nonexistent/renewkit-hook", "reload"]]`
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"deploy hook", "/nonexistent/renewkit-hook reload", "no such file", "fix:", `"fault":"local"`},
		check: func(t *testing.T, e *badEnv, r run) {
			noOrder(t, e, r)
			// Fixed, the next forced run renews and the hook runs.
			e.hooks = fmt.Sprintf("[[%q, %q, %q]]", bin.hook, "reload", e.hookLog)
			e.writeConfig()
			r3 := e.run(nil, "-force", "all")
			snap, _ := served.Check(e.dir)
			if r3.code != 0 || snap.Serial == e.old.Serial {
				t.Errorf("after the hook was fixed: %v", r3)
			}
			if e.reloads()[snap.Serial] == 0 {
				t.Errorf("after the hook was fixed, the served certificate's reload never ran:\n%v", r3)
			}
		},
	},
	{
		name: "webroot missing (preflight)",
		damage: func(t *testing.T, e *badEnv) {
			e.challenge = fmt.Sprintf("type = \"http-01\"\nwebroot = %q", filepath.Join(e.setup.dir, "no-such-webroot"))
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"renewkit.toml:", "webroot ", "does not exist", "fix:", `"fault":"local"`},
		check: func(t *testing.T, e *badEnv, r run) {
			noOrder(t, e, r)
			// Not counted against the CA's backoff: once the webroot
			// exists, the very next run goes ahead (and fails at the CA,
			// which cannot reach this webroot: what matters here is that
			// it was asked).
			if err := os.Mkdir(filepath.Join(e.setup.dir, "no-such-webroot"), 0o755); err != nil {
				t.Fatal(err)
			}
			e.run(nil, "-force", "all")
			if e.ca.Stats().Orders == e.orders {
				t.Errorf("the run after the fix was held back by the local failure")
			}
		},
	},
	{
		name: "webroot not writable (preflight)",
		damage: func(t *testing.T, e *badEnv) {
			webroot := filepath.Join(e.setup.dir, "ro-webroot")
			if err := os.MkdirAll(filepath.Join(webroot, ".well-known", "acme-challenge"), 0o755); err != nil {
				t.Fatal(err)
			}
			readOnly(t, webroot, filepath.Join(webroot, ".well-known", "acme-challenge"))
			e.challenge = fmt.Sprintf("type = \"http-01\"\nwebroot = %q", webroot)
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs:  []string{"renewkit.toml:", "webroot challenge directory", `"fault":"local"`},
		check: noOrder,
	},
	{
		name: "listen port busy (preflight)",
		damage: func(t *testing.T, e *badEnv) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			e.listen = ln.Addr().String()
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs:  []string{"renewkit.toml:", "address already in use", fmt.Sprintf("held by PID %d", os.Getpid()), "fix:"},
		check: noOrder,
	},
	{
		name: "account directory unusable (preflight)",
		damage: func(t *testing.T, e *badEnv) {
			f := filepath.Join(e.setup.dir, "a-file")
			writeFile(t, f, nil)
			e.account = filepath.Join(f, "account")
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs:  []string{"renewkit.toml:", "account directory", "not a directory", `"fault":"local"`},
		check: noOrder,
	},
	{
		name: "agree_tos missing before the account exists",
		damage: func(t *testing.T, e *badEnv) {
			e.account = filepath.Join(e.setup.dir, "new-account")
			e.noAgreeTOS = true
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 2, served: unchanged,
		msgs:  []string{"renewkit.toml", "agree_tos is not set", "agree_tos = true"},
		check: noOrder,
	},
	{
		name: "dry run reports every problem",
		damage: func(t *testing.T, e *badEnv) {
			e.hooks = `[["/nonexistent/renewkit-hook", "reload"]]`
			e.challenge = fmt.Sprintf("type = \"http-01\"\nwebroot = %q", filepath.Join(e.setup.dir, "no-such-webroot"))
			e.writeConfig()
		},
		args: []string{"-dry-run"},
		code: 1, served: unchanged,
		msgs: []string{"found 2 problems"},
		check: func(t *testing.T, e *badEnv, r run) {
			noOrder(t, e, r)
			for _, m := range []string{"www: problem: ", "/nonexistent/renewkit-hook", "no-such-webroot: does not exist"} {
				if !strings.Contains(r.stdout, m) {
					t.Errorf("the dry run's report does not mention %q:\n%s", m, r.stdout)
				}
			}
		},
	},
	{
		name: "hook hangs past its timeout",
		damage: func(t *testing.T, e *badEnv) {
			e.hooks = fmt.Sprintf("[[%q, %q]]", bin.hook, "hang")
			e.hookTimeout = "1s"
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: replaced,
		msgs: []string{"hang", "1s"},
	},
	{
		name: "hook prints 20 MB and fails",
		damage: func(t *testing.T, e *badEnv) {
			e.hooks = fmt.Sprintf("[[%q, %q, %q, %q]]", bin.hook, "spew", "20000000", "fail")
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: replaced,
		msgs: []string{"spew", "failing on purpose"},
		check: func(t *testing.T, e *badEnv, r run) {
			if len(r.stderr) > 256<<10 {
				t.Errorf("the hook's 20 MB reached the log: %d bytes of stderr", len(r.stderr))
			}
		},
	},
	{
		name: "hook prints 20 MB and succeeds",
		damage: func(t *testing.T, e *badEnv) {
			e.hooks = fmt.Sprintf("[[%q, %q, %q]]", bin.hook, "spew", "20000000")
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 0, served: replaced,
		msgs: []string{"renewed"},
		check: func(t *testing.T, e *badEnv, r run) {
			if len(r.stderr) > 256<<10 {
				t.Errorf("the hook's 20 MB reached the log: %d bytes of stderr", len(r.stderr))
			}
		},
	},
	{
		name:   "config with an unknown key",
		damage: func(t *testing.T, e *badEnv) { e.top = "colour = \"blue\""; e.writeConfig() },
		code:   2, served: unchanged,
		msgs: []string{"renewkit.toml:7:", "unknown key colour"},
	},
	{
		name:   "config with a value of the wrong type",
		damage: func(t *testing.T, e *badEnv) { e.top = "keep = \"three\""; e.writeConfig() },
		code:   2, served: unchanged,
		msgs: []string{"renewkit.toml:7:", "keep", "wrong type"},
	},
	{
		name: "config with duplicate certificate names",
		damage: func(t *testing.T, e *badEnv) {
			e.certs = append(e.certs, certSpec{name: "www", domains: []string{"dup.example.test"}})
			e.writeConfig()
		},
		code: 2, served: unchanged,
		msgs: []string{"renewkit.toml", `"www" is already used`},
	},
	{
		name: "CA URL that is not ACME",
		damage: func(t *testing.T, e *badEnv) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprint(w, "<html><body><h1>404 Not Found</h1></body></html>")
			}))
			t.Cleanup(srv.Close)
			e.caFile = filepath.Join(e.setup.dir, "not-acme.pem")
			writeFile(t, e.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
			e.server = srv.URL + "/directory"
			e.account = filepath.Join(e.setup.dir, "account-not-acme")
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"/directory", "404", "failed"},
	},
	{
		name: "a stray temporary generation",
		damage: func(t *testing.T, e *badEnv) {
			tmp := filepath.Join(e.dir, "generations", ".000002.tmp-crashtest")
			if err := os.Mkdir(tmp, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(tmp, "cert.pem"), []byte("-----BEGIN CERT"))
		},
		code: 0, served: unchanged,
		msgs: []string{"not_due"},
	},
	// Issue 11, items 5 to 8: a CA that misbehaves, and an account
	// directory nobody should trust.
	{
		name:   "account key readable by others",
		damage: func(t *testing.T, e *badEnv) { chmod(t, filepath.Join(e.account, "account.key"), 0o644) },
		args:   []string{"-force", "all"},
		code:   1, served: unchanged,
		msgs: []string{"account.key", "has mode -rw-r--r--", "failed"},
	},
	{
		name:   "account directory writable by others",
		damage: func(t *testing.T, e *badEnv) { chmod(t, e.account, 0o777) },
		args:   []string{"-force", "all"},
		code:   2, served: unchanged,
		msgs: []string{"account_dir", "writable by"},
	},
	{
		name:   "storage root writable by others",
		damage: func(t *testing.T, e *badEnv) { chmod(t, e.root, 0o777) },
		code:   1, served: unchanged,
		msgs: []string{"Root", "writable by", "failed"},
	},
	{
		name:   "the CA forgot the account",
		damage: func(t *testing.T, e *badEnv) { forgetAccount(t, e, false) },
		args:   []string{"-force", "all"},
		code:   0, served: replaced,
		msgs: []string{"registering it again", "renewed"},
	},
	{
		name:   "the CA forgot the account and refuses its key",
		damage: func(t *testing.T, e *badEnv) { forgetAccount(t, e, true) },
		args:   []string{"-force", "all"},
		code:   0, served: replaced,
		msgs: []string{"registering a new one", "renewed"},
	},
	{
		name: "the CA answers with a 10 MiB error page",
		damage: func(t *testing.T, e *badEnv) {
			e.ca.Inject(testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultHTML, Status: 403, BodySize: 10 << 20})
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"exceeds 65536 bytes", "failed"},
		check: func(t *testing.T, e *badEnv, r run) {
			if len(r.stderr) > 64<<10 {
				t.Errorf("the run logged %d bytes", len(r.stderr))
			}
			if fi, err := os.Stat(filepath.Join(e.dir, "state.json")); err != nil || fi.Size() > 16<<10 {
				t.Errorf("state.json: %v, %v bytes", err, fi.Size())
			}
		},
	},
	{
		name: "the CA leaves a failed challenge pending",
		damage: func(t *testing.T, e *badEnv) {
			e.ca.Inject(testacme.Fault{Endpoint: testacme.EndpointChallenge, Kind: testacme.FaultPendingError, Detail: "connection refused by the test"})
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"connection refused by the test", "failed"},
	},
	{
		name:   "pending.key garbage",
		damage: func(t *testing.T, e *badEnv) { writeFile(t, filepath.Join(e.dir, "pending.key"), []byte("garbage\n")) },
		code:   0, served: unchanged,
		msgs: []string{"unusable order journal", "not_due"},
	},
}

// TestBadInput damages an installed lineage, its configuration or its
// surroundings one way per case, and checks that a run reports the problem
// clearly (what and where), exits with the documented code, and keeps the
// installed certificate — or, when the installed certificate is the damage,
// replaces it with a whole new one.
func TestBadInput(t *testing.T) {
	t.Parallel()
	type row struct{ name, result string }
	cases := slices.Concat(badCases, edgeBadCases, operrBadCases)
	rows := make([]row, len(cases))
	t.Run("cases", func(t *testing.T) {
		concurrently(t, workers(t), cases, func(tc badCase) string { return tc.name },
			func(t *testing.T, i int, tc badCase) {
				rows[i] = row{tc.name, badCaseRun(t, tc)}
			})
	})
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "BAD INPUT\tRESULT\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r.name, r.result)
	}
	tw.Flush()
	t.Logf("bad input, %d cases:\n%s", len(cases), b.String())
}

func badCaseRun(t *testing.T, tc badCase) string {
	opts := caOptions()
	if tc.caOpts != nil {
		tc.caOpts(&opts)
	}
	ca := testacme.New(t, opts)
	e := &badEnv{setup: newSetup(t, ca, false, certSpec{name: "www", domains: []string{"www.example.test"}}), ca: ca}
	e.dir = e.lineage("www")
	if tc.config != nil {
		tc.config(t, e)
	}
	e.mustRun(0)
	old, err := served.Check(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.old = old
	e.gen, err = filepath.EvalSymlinks(filepath.Join(e.dir, "current"))
	if err != nil {
		t.Fatal(err)
	}
	before, genBefore := snapshotFiles(e.dir), snapshotFiles(e.gen)
	e.orders = e.ca.Stats().Orders
	tc.damage(t, e)

	r := e.run(nil, tc.args...)
	result := fmt.Sprintf("exit %d, %s", r.code, r.outcome("www"))
	fail := func(format string, args ...any) {
		t.Helper()
		if tc.known != "" {
			result += " [" + knownIssue(t, tc.known, format, args...) + "]"
			return
		}
		t.Errorf(format, args...)
	}
	if r.code != tc.code {
		fail("exit %d, want %d:\n%v", r.code, tc.code, r)
	}
	for _, m := range tc.msgs {
		if !strings.Contains(r.stderr, m) {
			fail("the output does not mention %q:\n%v", m, r)
		}
	}
	switch tc.served {
	case unchanged:
		if after := snapshotFiles(e.dir); !sameFiles(before, after) {
			fail("the served files changed")
		}
		if _, err := served.Check(e.dir); err != nil {
			fail("the served files are not whole: %v", err)
		}
		result += ", installed certificate unchanged"
	case replaced:
		snap, err := served.Check(e.dir)
		switch {
		case err != nil:
			fail("the served files are not whole: %v", err)
		case snap.Serial == old.Serial:
			fail("the damaged certificate (serial %s) is still served", old.Serial)
		default:
			result += ", replaced by a whole new certificate"
		}
	case kept:
		if after := snapshotFiles(e.gen); !sameFiles(genBefore, after) || len(after) != len(served.Files()) {
			fail("generation %s changed", e.gen)
		} else {
			result += ", installed generation kept"
		}
	}
	if msg := problemMessage(r); msg != "" {
		result += ": " + msg
	}
	if tc.check != nil {
		tc.check(t, e, r)
	}
	return result
}

// problemMessage is the first line of standard error that is not JSON, or
// the error (or hook_error) of the first summary record, or the first WARN
// record's message and error.
func problemMessage(r run) string {
	for _, l := range strings.Split(r.stderr, "\n") {
		if l != "" && !strings.HasPrefix(l, "{") {
			return strings.TrimSpace(l)
		}
	}
	for _, rec := range r.summaries() {
		for _, k := range []string{"error", "hook_error"} {
			if s, ok := rec[k].(string); ok {
				return truncateMsg(s)
			}
		}
	}
	for _, l := range strings.Split(r.stderr, "\n") {
		var rec struct{ Level, Msg, Error string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Level == "WARN" {
			if rec.Error != "" {
				return truncateMsg(rec.Msg + ": " + rec.Error)
			}
			return truncateMsg(rec.Msg)
		}
	}
	return ""
}

func truncateMsg(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 240 {
		return s[:240] + "…"
	}
	return s
}

// noOrder checks that the CA created no order during the run: a problem
// found before ordering must not cost an order.
func noOrder(t *testing.T, e *badEnv, r run) {
	t.Helper()
	if n := e.ca.Stats().Orders; n != e.orders {
		t.Errorf("%d orders created at the CA for a problem of this machine:\n%v", n-e.orders, r)
	}
}

// readOnly makes dir read-only for this process: a read-only bind mount of
// it onto itself when running as root (root ignores permission bits), or
// mode 0555 for it and the directories in subs otherwise.
func readOnly(t *testing.T, dir string, subs ...string) {
	if os.Geteuid() != 0 {
		chmod(t, dir, 0o555)
		for _, d := range subs {
			chmod(t, d, 0o555)
		}
		return
	}
	if err := canMount(t); err != nil {
		t.Skipf("cannot make a read-only directory as root without mounting: %v", err)
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s: %v", dir, err)
	}
	unmountLater(t, dir)
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}

func sameFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forgetAccount makes the CA forget the setup's account (see
// testacme.Server.ForgetAccount).
func forgetAccount(t *testing.T, e *badEnv, refuseKey bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.account, "account.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if err := e.ca.ForgetAccount(rec.URL, refuseKey); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(path, 0o755) })
}

func truncateHalf(t *testing.T, path string) {
	t.Helper()
	b := readFile(t, path)
	writeFile(t, path, b[:len(b)/2])
}

func replaceSymlink(t *testing.T, link, target string) {
	t.Helper()
	remove(t, link)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func newKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// canMount reports whether this process may mount file systems (root with
// CAP_SYS_ADMIN), by trying on a scratch directory.
func canMount(t *testing.T) error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	d := t.TempDir()
	if err := syscall.Mount("tmpfs", d, "tmpfs", 0, "size=16k"); err != nil {
		return fmt.Errorf("mount tmpfs: %w (no CAP_SYS_ADMIN?)", err)
	}
	return syscall.Unmount(d, 0)
}

// unmountLater unmounts dir when the test ends (lazily if busy).
func unmountLater(t *testing.T, dir string) {
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// readOnlyRoot makes the storage root read-only.
func readOnlyRoot(t *testing.T, e *badEnv) { readOnly(t, e.root, e.dir) }

// smallDisk puts the storage root on a 64 KiB tmpfs (root only).
func smallDisk(t *testing.T, e *badEnv) {
	if err := canMount(t); err != nil {
		t.Skipf("a full disk needs a small tmpfs: %v", err)
	}
	if err := os.MkdirAll(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", e.root, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", e.root, err)
	}
	unmountLater(t, e.root)
}

// fillDisk fills the storage root's file system.
func fillDisk(t *testing.T, e *badEnv) {
	f, err := os.Create(filepath.Join(e.root, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1024)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			return
		}
	}
}
