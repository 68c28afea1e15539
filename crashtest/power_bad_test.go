package crashtest_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/internal/testpki"
)

// badWriter installs a new generation and switches current to it, with
// some of atomicfs's fsyncs left out or moved.
type badWriter struct {
	name string
	// skipFileSync: the files are renamed into place (with their
	// directory) without an fsync of their own.
	skipFileSync bool
	// skipRenameSync: generations/ is not fsynced after the new
	// generation's directory is renamed into it.
	skipRenameSync bool
	// swapFirst: current is switched (and the switch fsynced) before the
	// new generation is durable; its fsyncs come after.
	swapFirst bool
}

// write puts f into dir's next generation, numbered seq, the way the
// writer does: a temporary directory with the five files, renamed to
// generations/NNNNNN, then current switched by a temporary symbolic link
// renamed over it.
func (w badWriter) write(t *testing.T, dir string, seq int, f atomicfs.Files) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
	}
	gens := filepath.Join(dir, "generations")
	tmp := filepath.Join(gens, fmt.Sprintf(".%06d.tmp-bad", seq))
	final := filepath.Join(gens, fmt.Sprintf("%06d", seq))
	must(os.Mkdir(tmp, 0o755))
	full := append(append([]byte{}, f.Cert...), f.Chain...)
	files := []struct {
		name string
		data []byte
	}{
		{"cert.pem", f.Cert}, {"chain.pem", f.Chain}, {"fullchain.pem", full},
		{"privkey.pem", f.Key}, {"combined.pem", append(append([]byte{}, f.Key...), full...)},
	}
	var open []*os.File
	for _, x := range files {
		fh, err := os.OpenFile(filepath.Join(tmp, x.name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		must(err)
		_, err = fh.Write(x.data)
		must(err)
		open = append(open, fh)
	}
	syncFiles := func() {
		for _, fh := range open {
			must(fh.Sync())
		}
	}
	swap := func() {
		link := filepath.Join(dir, ".current.tmp-bad")
		must(os.Symlink(filepath.Join("generations", filepath.Base(final)), link))
		must(os.Rename(link, filepath.Join(dir, "current")))
		must(syncDir(dir))
	}
	if w.swapFirst {
		must(os.Rename(tmp, final))
		swap()
	}
	if !w.skipFileSync {
		syncFiles()
	}
	for _, fh := range open {
		must(fh.Close())
	}
	if !w.swapFirst {
		must(syncDir(tmp))
		must(os.Rename(tmp, final))
	} else {
		must(syncDir(final))
	}
	if !w.skipRenameSync {
		must(syncDir(gens))
	}
	if !w.swapFirst {
		swap()
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// TestPowerLossCatchesBadWriters shows that the power-loss suite's check of
// the served set (servedAfterCut, check (1) of TestPowerLoss), applied to
// every disk a power cut can leave, reports each of three deliberately
// wrong writers: a rename without an fsync of the files, no fsync of the
// directory after the rename, and a swap before the new generation is
// durable. atomicfs's own Install and Activate pass the same check. A
// checker that cannot fail would prove nothing.
func TestPowerLossCatchesBadWriters(t *testing.T) {
	t.Parallel()
	writers := []badWriter{
		{name: "correct (atomicfs Install + Activate)"},
		{name: "rename without fsync of the files", skipFileSync: true},
		{name: "no fsync of generations/ after the rename", skipRenameSync: true},
		{name: "swap before the new generation is durable", swapFirst: true},
	}
	oldFiles, oldSerial := selfSigned(t, 1)
	newFiles, newSerial := selfSigned(t, 2)
	var report strings.Builder
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			fsys, mnt := mountLossyAt(t, t.TempDir())
			lineage := filepath.Join(mnt, powerRoot, "www")
			store, err := atomicfs.Open(lineage, atomicfs.Modes{})
			if err != nil {
				t.Fatal(err)
			}
			g, err := store.Install(oldFiles)
			if err == nil {
				err = store.Activate(g)
			}
			if err != nil {
				t.Fatal(err)
			}
			fsys.Checkpoint()
			if strings.HasPrefix(w.name, "correct") {
				if g, err = store.Install(newFiles); err == nil {
					err = store.Activate(g)
				}
				if err != nil {
					t.Fatal(err)
				}
			} else {
				w.write(t, lineage, 2, newFiles)
			}
			rec := fsys.Recording()
			rng := mrand.New(mrand.NewPCG(powerSeed(t), 2))
			disks, bad := 0, 0
			first := ""
			for p := 0; p <= rec.Len(); p++ {
				for _, d := range rec.Disks(p, 4, true, rng, powerRoot) {
					disks++
					dir := t.TempDir()
					if err := d.Materialize(dir); err != nil {
						t.Fatal(err)
					}
					if _, msg := servedAfterCut(filepath.Join(dir, powerRoot, "www"), oldSerial, newSerial); msg != "" {
						bad++
						if first == "" {
							first = fmt.Sprintf("%v: %s", d, msg)
						}
					}
				}
			}
			fmt.Fprintf(&report, "%-45s %4d disks, %3d reported  %s\n", w.name, disks, bad, first)
			switch correct := strings.HasPrefix(w.name, "correct"); {
			case correct && bad > 0:
				t.Errorf("the correct writer: %d of %d disks reported; first: %s", bad, disks, first)
			case !correct && bad == 0:
				t.Errorf("%s: not one of %d disks reported: the check cannot see this bug", w.name, disks)
			}
		})
	}
	t.Logf("the served-set check on every power cut of each writer:\n%s", report.String())
}

// selfSigned returns a self-signed certificate with the given serial and
// its key, in PEM, and the serial as package served formats it.
func selfSigned(t *testing.T, serial int64) (atomicfs.Files, string) {
	t.Helper()
	leaf, err := testpki.SelfSigned(&x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "bad.example.test"},
		DNSNames:     []string{"bad.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return atomicfs.Files{Cert: leaf.CertPEM, Key: leaf.KeyPEM}, fmt.Sprintf("%x", serial)
}
