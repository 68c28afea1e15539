//go:build unix

package atomicfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/testchild"
)

// Environment of the helper process (see TestHelperProcess).
const (
	envRole = "RENEWKIT_ATOMICFS_HELPER" // install | writefile | roulette
	envDir  = "RENEWKIT_ATOMICFS_DIR"    // lineage directory, or the file for writefile
	envIn   = "RENEWKIT_ATOMICFS_IN"     // directory with cert.pem chain.pem privkey.pem, or the data file
	envAt   = "RENEWKIT_ATOMICFS_AT"     // crash point: the step name to stop at
)

// TestHelperProcess is not a test: it is the child process the crash tests kill
// with SIGKILL, selected by RENEWKIT_ATOMICFS_HELPER. The crash-point seam is set
// only here.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(envRole)
	if role == "" {
		t.Skip("helper process only")
	}
	if err := helper(role); err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	fmt.Println("finished")
	os.Exit(0)
}

// stopAt returns a crash hook that, at step target, says "AT <step>" and blocks
// until the parent kills the process.
func stopAt(target string) func(string) {
	return func(step string) {
		if step != target {
			return
		}
		fmt.Printf("AT %s\n", step)
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(4) // stdin closed: the parent is gone
	}
}

func helper(role string) error {
	dir, in, at := os.Getenv(envDir), os.Getenv(envIn), os.Getenv(envAt)
	switch role {
	case "install":
		var f Files
		for name, dst := range map[string]*[]byte{CertFile: &f.Cert, ChainFile: &f.Chain, KeyFile: &f.Key} {
			b, err := os.ReadFile(filepath.Join(in, name))
			if err != nil {
				return err
			}
			*dst = b
		}
		s, err := Open(dir, Modes{})
		if err != nil {
			return err
		}
		s.crashAt = stopAt(at)
		g, err := s.Install(f)
		if err != nil {
			return err
		}
		return s.Activate(g)
	case "writefile":
		data, err := os.ReadFile(in)
		if err != nil {
			return err
		}
		return durable.Write(dir, data, durable.Options{Perm: 0o640, GID: -1, Crash: stopAt(at)})
	case "roulette":
		return roulette(dir)
	}
	return fmt.Errorf("unknown role %q", role)
}

// roulette is one renewal run after another, forever: recover and roll forward
// as a real run does, then install, activate and prune, saying "ok <serial>"
// after each activation. The parent kills it at an arbitrary instant.
func roulette(dir string) error {
	ca, err := newTestCA()
	if err != nil {
		return err
	}
	s, err := Open(dir, Modes{})
	if err != nil {
		return err
	}
	for serial := int64(rand.Uint32()); ; serial++ {
		rep, err := s.Recover()
		if err != nil {
			return err
		}
		if len(rep.Newer) > 0 {
			if err := s.Activate(rep.Newer[len(rep.Newer)-1]); err != nil {
				return err
			}
		}
		f, err := ca.issue(serial)
		if err != nil {
			return err
		}
		g, err := s.Install(f)
		if err != nil {
			return err
		}
		if err := s.Activate(g); err != nil {
			return err
		}
		fmt.Printf("ok %d\n", serial)
		if _, err := s.Prune(3); err != nil {
			return err
		}
	}
}

// killAt runs a helper that stops at step, then kills it with SIGKILL.
func killAt(t *testing.T, step string, env ...string) {
	t.Helper()
	c := testchild.Start(t, "TestHelperProcess", append(env, envAt+"="+step)...)
	if got := c.Line(t); got != "AT "+step {
		_ = c.Cmd.Wait()
		t.Fatalf("child said %q, want %q", got, "AT "+step)
	}
	c.Kill(t)
}

func writeInput(t *testing.T, f Files) string {
	t.Helper()
	in := t.TempDir()
	for name, b := range map[string][]byte{CertFile: f.Cert, ChainFile: f.Chain, KeyFile: f.Key} {
		if err := os.WriteFile(filepath.Join(in, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// recordSteps runs Install and Activate in this process and returns the crash
// points they pass, in order.
func recordSteps(t *testing.T, dir string, f Files) []string {
	t.Helper()
	var steps []string
	s := mustOpen(t, dir)
	s.crashAt = func(step string) { steps = append(steps, step) }
	mustInstallActivate(t, s, f)
	return steps
}

var (
	installSteps = []string{
		"install:2", "install:3",
		"install:4:cert.pem", "install:4:chain.pem", "install:4:fullchain.pem", "install:4:privkey.pem", "install:4:combined.pem", "install:4:sync",
		"install:5", "install:6", "install:7", "install:done",
	}
	linkSteps = []string{
		"activate:3:cert.pem", "activate:3:chain.pem", "activate:3:fullchain.pem", "activate:3:privkey.pem", "activate:3:combined.pem",
	}
)

// TestCrashAtEveryStepOfInstallAndActivate kills a child process (SIGKILL) at
// every numbered step of Install and Activate, for a renewal (generation 1
// served) and for a first issuance (nothing served), and checks that what is
// served is exactly the old generation or the new one, whole, with its key; that
// Recover leaves no temporary file and reports exactly the completed but
// unactivated generation; and that the run can be finished afterwards.
func TestCrashAtEveryStepOfInstallAndActivate(t *testing.T) {
	ca := mustCA(t)
	oldFiles, newFiles := ca.mustIssue(t, 1001), ca.mustIssue(t, 1002)
	in := writeInput(t, newFiles)

	scenarios := []struct {
		name     string
		setup    func(t *testing.T, s *Store) // state before the run
		oldSeq   int64                        // serial served before; 0: nothing
		newGen   int                          // the generation the run installs
		actSteps []string
	}{
		{
			name:     "renewal",
			setup:    func(t *testing.T, s *Store) { mustInstallActivate(t, s, oldFiles) },
			oldSeq:   1001,
			newGen:   2,
			actSteps: []string{"activate:4", "activate:5", "activate:6", "activate:done"},
		},
		{
			name:     "first issuance",
			setup:    func(*testing.T, *Store) {},
			newGen:   1,
			actSteps: slices.Concat(linkSteps, []string{"activate:4", "activate:5", "activate:6", "activate:done"}),
		},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			// The seam's step list is the documented one.
			probe := filepath.Join(t.TempDir(), "probe")
			sc.setup(t, mustOpen(t, probe))
			steps := recordSteps(t, probe, newFiles)
			if want := slices.Concat(installSteps, sc.actSteps); !slices.Equal(steps, want) {
				t.Fatalf("crash points = %q\nwant %q", steps, want)
			}
			renamed := slices.Index(steps, "install:7")      // killed here or later: generation complete
			swapped := slices.Index(steps, "activate:5") + 1 // killed here or later: current switched
			tmpFrom, tmpTo := slices.Index(steps, "install:4:cert.pem"), slices.Index(steps, "install:6")

			for i, step := range steps {
				t.Run(step, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "example.com")
					sc.setup(t, mustOpen(t, dir))
					killAt(t, step, envRole+"=install", envDir+"="+dir, envIn+"="+in)

					// What a server reads right after the crash.
					wantSerial := sc.oldSeq
					if i >= swapped {
						wantSerial = 1002
					}
					serial, err := served(dir)
					switch {
					case err == nil && serial == wantSerial:
					case errors.Is(err, fs.ErrNotExist) && (wantSerial == 0 || sc.oldSeq == 0):
						// First issuance: nothing served yet, or the switch done
						// and some stable links not yet created.
					default:
						t.Fatalf("served serial %d, err %v; want %d", serial, err, wantSerial)
					}

					s := mustOpen(t, dir)
					rep, err := s.Recover()
					if err != nil {
						t.Fatalf("Recover: %v", err)
					}
					if stray := strayEntries(t, dir); len(stray) > 0 {
						t.Fatalf("after Recover: stray entries %q", stray)
					}
					wantRemoved := 0
					if i >= tmpFrom && i <= tmpTo {
						wantRemoved++ // the temporary generation directory
					}
					if step == "activate:5" {
						wantRemoved++ // the temporary current link
					}
					if len(rep.Removed) != wantRemoved {
						t.Errorf("Recover removed %q, want %d entries", rep.Removed, wantRemoved)
					}
					wantNewer := []int{}
					if i >= renamed && i < swapped {
						wantNewer = []int{sc.newGen}
					}
					if got := seqs(rep.Newer); !slices.Equal(got, wantNewer) {
						t.Errorf("Recover reported newer generations %v, want %v", got, wantNewer)
					}
					if len(rep.Incomplete) != 0 {
						t.Errorf("Recover reported incomplete generations %v", rep.Incomplete)
					}

					// Recover repaired the links and changed nothing else.
					if serial, err := served(dir); wantSerial != 0 && (err != nil || serial != wantSerial) {
						t.Fatalf("after Recover: served serial %d, err %v; want %d", serial, err, wantSerial)
					}

					// Finish the run: roll forward, or install again.
					if len(rep.Newer) > 0 {
						if err := s.Activate(rep.Newer[len(rep.Newer)-1]); err != nil {
							t.Fatalf("roll forward: %v", err)
						}
					} else if i < swapped {
						mustInstallActivate(t, s, newFiles)
					}
					if serial, err := served(dir); err != nil || serial != 1002 {
						t.Fatalf("after finishing: served serial %d, err %v; want 1002", serial, err)
					}
					gens, err := s.Generations()
					if err != nil {
						t.Fatal(err)
					}
					if got := seqs(gens); len(got) != sc.newGen || got[len(got)-1] != sc.newGen {
						t.Errorf("generations %v, want 1..%d", got, sc.newGen)
					}
				})
			}
		})
	}
}

// TestCrashLeftoverNeverCollidesWithNextGeneration: a temporary directory left by
// a killed Install counts when numbering, so the next Install (without Recover)
// takes the number after it.
func TestCrashLeftoverNeverCollidesWithNextGeneration(t *testing.T) {
	ca := mustCA(t)
	dir := filepath.Join(t.TempDir(), "example.com")
	s := mustOpen(t, dir)
	mustInstallActivate(t, s, ca.mustIssue(t, 1))
	killAt(t, "install:5", envRole+"=install", envDir+"="+dir, envIn+"="+writeInput(t, ca.mustIssue(t, 2)))

	g, err := s.Install(ca.mustIssue(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	if g.Seq != 3 {
		t.Errorf("Install after a killed Install of generation 2: got %d, want 3", g.Seq)
	}
	rep, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 1 || !strings.HasPrefix(filepath.Base(rep.Removed[0]), ".000002.tmp-") {
		t.Errorf("Recover removed %q, want the .000002.tmp-* directory", rep.Removed)
	}
	if got := seqs(rep.Newer); !slices.Equal(got, []int{3}) {
		t.Errorf("newer = %v, want [3]", got)
	}
}

// TestCrashAtEveryStepOfWriteFile kills a child at every step of WriteFile
// replacing a 0644 file with a 0640 one: the file is the old one or the new one,
// whole and with its own mode; a temporary file, if left, sits beside the target
// (not in TMPDIR) with the final mode even before its first byte, and Recover
// deletes it.
func TestCrashAtEveryStepOfWriteFile(t *testing.T) {
	steps := []string{"writefile:1", "writefile:2", "writefile:3", "writefile:4", "writefile:done"}
	oldData, newData := []byte("old state\n"), []byte(strings.Repeat("new state\n", 100))
	data := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(data, newData, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, step := range steps {
		t.Run(step, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "example.com")
			s := mustOpen(t, dir)
			path := filepath.Join(dir, "state.json")
			if err := os.WriteFile(path, oldData, 0o644); err != nil {
				t.Fatal(err)
			}
			tmpdir := t.TempDir()
			killAt(t, step, envRole+"=writefile", envDir+"="+path, envIn+"="+data, "TMPDIR="+tmpdir)

			want, wantMode := oldData, fs.FileMode(0o644)
			if i >= 3 { // killed at (4) or later: renamed
				want, wantMode = newData, 0o640
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != string(want) {
				t.Fatalf("after the crash: %q (%v), want %q", got, err, want)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != wantMode {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), wantMode)
			}

			stray := strayEntries(t, dir)
			if wantStray := i == 1 || i == 2; (len(stray) == 1) != wantStray || len(stray) > 1 {
				t.Fatalf("stray entries %q, want one temporary file: %v", stray, wantStray)
			}
			for _, name := range stray {
				fi, err := os.Lstat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if !durable.IsTemp(name, map[string]bool{"state.json": true}) || fi.Mode().Perm() != 0o640 {
					t.Errorf("temporary file %s mode %v, want .state.json<digits> with mode 0640", name, fi.Mode().Perm())
				}
				if step == "writefile:2" && fi.Size() != 0 {
					t.Errorf("temporary file has %d bytes before the write step", fi.Size())
				}
			}
			if left, _ := os.ReadDir(tmpdir); len(left) != 0 {
				t.Errorf("TMPDIR holds %d entries; temporary files must sit beside the target", len(left))
			}
			if _, err := s.Recover(); err != nil {
				t.Fatal(err)
			}
			if stray := strayEntries(t, dir); len(stray) > 0 {
				t.Errorf("after Recover: stray entries %q", stray)
			}
		})
	}
}

// TestCrashAtRandomInstants runs renewals back to back in a child and kills it at
// an arbitrary instant, several times over the same lineage: whatever is served is
// always one whole generation, and Recover always cleans up.
func TestCrashAtRandomInstants(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	dir := filepath.Join(t.TempDir(), "example.com")
	for round := range rounds {
		c := testchild.Start(t, "TestHelperProcess", envRole+"=roulette", envDir+"="+dir)
		for range 1 + rand.IntN(4) {
			if line := c.Line(t); !strings.HasPrefix(line, "ok ") {
				t.Fatalf("round %d: child said %q", round, line)
			}
		}
		// Kill at a random instant of the renewals that follow (one Install and
		// Activate take a few milliseconds).
		time.Sleep(rand.N(6 * time.Millisecond))
		c.Kill(t)

		serial, err := served(dir)
		if err != nil {
			t.Fatalf("round %d: served: %v", round, err)
		}
		s := mustOpen(t, dir)
		rep, err := s.Recover()
		if err != nil {
			t.Fatalf("round %d: Recover: %v", round, err)
		}
		if stray := strayEntries(t, dir); len(stray) > 0 {
			t.Fatalf("round %d: after Recover: stray entries %q", round, stray)
		}
		if len(rep.Newer) > 0 {
			if err := s.Activate(rep.Newer[len(rep.Newer)-1]); err != nil {
				t.Fatal(err)
			}
		}
		after, err := served(dir)
		if err != nil {
			t.Fatalf("round %d: after roll forward: %v", round, err)
		}
		t.Logf("round %d: served %d at the kill, %d after recovery (%d removed, %d rolled forward)", round, serial, after, len(rep.Removed), len(rep.Newer))
	}
	gens, err := mustOpen(t, dir).Generations()
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) > 4 { // Prune(3) keeps 3; a crash may leave one more
		t.Errorf("%d generations kept: %v", len(gens), seqs(gens))
	}
}
