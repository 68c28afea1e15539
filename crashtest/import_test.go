package crashtest_test

import (
	"bytes"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/internal/realclients"
	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
)

// TestImportCrashPoints kills `renew-certificates -import certbot -yes` at
// every crash point it passes (the account's writes, the adoption's
// install steps, the configuration's write) and checks, after the kill and
// after a normal rerun of the same command:
//
//   - the lineage serves nothing or certbot's whole certificate, never
//     a part or another;
//   - after the rerun it serves certbot's certificate and key, its deploy
//     hook has run at least once with those files served, the
//     configuration names it, and nothing is left behind;
//   - no order reached the CA, and certbot's directory is unchanged.
func TestImportCrashPoints(t *testing.T) {
	t.Parallel()
	realclients.Need(t, "certbot")
	ca := testacme.New(t, caOptions())
	cb := realclients.NewCertbot(t)
	cb.Certonly(t, ca, append([]string{"--cert-name", "www", "-d", "www.example.test"}, realclients.Standalone(ca)...)...)
	live := filepath.Join(cb.Config, "live", "www")
	certPEM, err := os.ReadFile(filepath.Join(live, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		t.Fatal("certbot's cert.pem holds no PEM")
	}
	orders := ca.Stats().Orders

	// The setup's hook log receives the deploy hook's runs: certbot's
	// renewal conf is given the crash suite's hook as its --deploy-hook.
	newImport := func(t *testing.T) (*setup, []string) {
		s := newSetup(t, ca, false)
		from := filepath.Join(s.dir, "letsencrypt")
		if out, err := exec.Command("cp", "-a", cb.Config, from).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		conf := filepath.Join(from, "renewal", "www.conf")
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("[renewalparams]\n"), []byte("[renewalparams]\nrenew_hook = "+bin.hook+" reload "+s.hookLog+"\n"), 1)
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(s.config); err != nil { // -import writes it
			t.Fatal(err)
		}
		return s, []string{"-import", "certbot", "-from", from, "-root", s.root, "-account-dir", s.account, "-ca-file", ca.CAFile(), "-yes"}
	}

	s, args := newImport(t)
	trace := filepath.Join(s.dir, "trace")
	if r := s.run([]string{"RENEWKIT_CRASH_TRACE=" + trace}, args...); r.code != 0 {
		t.Fatalf("traced import: %v", r)
	}
	points := readTrace(t, trace)
	if !slices.ContainsFunc(points, func(p string) bool { return strings.HasPrefix(p, "renew.run:14") }) {
		t.Fatalf("the import passed no renew.run:14: %v", points)
	}
	t.Logf("%d crash points: %v", len(points), points)
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			s, args := newImport(t)
			from := args[3]
			before := realclients.Snapshot(t, from)
			dir := s.lineage("www")
			r := s.run([]string{"RENEWKIT_CRASH_AT=" + point}, args...)
			if !r.killed {
				t.Fatalf("not killed at %s: %v", point, r)
			}
			switch snap, err := served.Check(dir); {
			case err == nil && !bytes.Equal(snap.Leaf.Raw, blk.Bytes):
				t.Errorf("after the kill the lineage serves serial %s, not certbot's", snap.Serial)
			case err != nil && !nothingServed(dir) && !errors.Is(err, served.ErrUnreadable):
				t.Errorf("after the kill the served files are not one whole generation: %v", err)
			}
			if rr := s.run(nil, args...); rr.code != 0 {
				t.Fatalf("rerun after the kill at %s: %v", point, rr)
			}
			snap, err := served.Check(dir)
			if err != nil || !bytes.Equal(snap.Leaf.Raw, blk.Bytes) {
				t.Fatalf("after the rerun: %v (serving certbot's certificate: %v)", err, err == nil && bytes.Equal(snap.Leaf.Raw, blk.Bytes))
			}
			if n := s.reloads()[snap.Serial]; n < 1 {
				t.Errorf("the deploy hook never ran with certbot's certificate served")
			}
			cfg, err := os.ReadFile(s.config)
			if err != nil || !strings.Contains(string(cfg), `name = "www"`) {
				t.Errorf("the configuration after the rerun (%v) does not name www:\n%s", err, cfg)
			}
			if left := leftovers(dir); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
			if after := realclients.Snapshot(t, from); after != before {
				t.Error("certbot's directory changed")
			}
			if n := ca.Stats().Orders; n != orders {
				t.Errorf("%d orders reached the CA", n-orders)
			}
		})
	}
}
