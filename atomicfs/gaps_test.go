//go:build unix

package atomicfs

// One test per renameio v2 gap this package closes (see the reference notes,
// acme-stack.md §5), at the syscall level with strace where it is installed.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/renameio/v2"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/testchild"
)

type syscallEvent struct{ call, args, ret string }

var (
	straceUnfinished = regexp.MustCompile(`^(\d+) +(.*) <unfinished \.\.\.>$`)
	straceResumed    = regexp.MustCompile(`^(\d+) +<\.\.\. \w+ resumed>(.*)$`)
	straceCall       = regexp.MustCompile(`^(?:\d+ +)?(\w+)\((.*)\) += (\S+)`)
)

// straceHelper runs the helper process under strace and returns the traced
// system calls in completion order. It skips the test when strace is missing or
// not permitted.
func straceHelper(t *testing.T, calls string, env ...string) []syscallEvent {
	t.Helper()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	out := filepath.Join(t.TempDir(), "trace")
	child := testchild.Command("TestHelperProcess", env...)
	cmd := exec.Command(strace, append([]string{"-f", "-qq", "-e", "signal=none", "-e", "trace=" + calls, "-o", out}, child.Args...)...)
	cmd.Env = child.Env
	b, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(b), "ptrace") {
			t.Skipf("strace not permitted here: %s", b)
		}
		t.Fatalf("strace: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "finished") {
		t.Fatalf("helper did not finish: %s", b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []syscallEvent
	pending := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := straceUnfinished.FindStringSubmatch(line); m != nil {
			pending[m[1]] = m[2]
			continue
		}
		if m := straceResumed.FindStringSubmatch(line); m != nil {
			line = pending[m[1]] + m[2]
			delete(pending, m[1])
		}
		if m := straceCall.FindStringSubmatch(line); m != nil {
			events = append(events, syscallEvent{m[1], m[2], m[3]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

// expectCall is one step of an expected syscall sequence: call and args are
// regular expressions (args anchored), in which {X} stands for a value saved by
// an earlier step with save "X" (the call's return value, e.g. a descriptor).
type expectCall struct{ call, args, save string }

// expectSequence checks that the steps occur in events in this order (other
// calls may come between).
func expectSequence(t *testing.T, events []syscallEvent, steps []expectCall) {
	t.Helper()
	vars := map[string]string{}
	i := 0
	for _, st := range steps {
		args := st.args
		for k, v := range vars {
			args = strings.ReplaceAll(args, "{"+k+"}", regexp.QuoteMeta(v))
		}
		callRE := regexp.MustCompile(`^(?:` + st.call + `)$`)
		argsRE := regexp.MustCompile(`^(?:` + args + `)$`)
		for ; i < len(events); i++ {
			if callRE.MatchString(events[i].call) && argsRE.MatchString(events[i].args) {
				break
			}
		}
		if i == len(events) {
			var got strings.Builder
			for _, e := range events {
				got.WriteString(e.call + "(" + e.args + ") = " + e.ret + "\n")
			}
			t.Fatalf("no %s(%s) after the previous steps; trace:\n%s", st.call, args, got.String())
		}
		if st.save != "" {
			vars[st.save] = events[i].ret
		}
		i++
	}
}

func q(path string) string { return regexp.QuoteMeta(`"` + path + `"`) }

// TestWriteFileSyscalls covers three renameio gaps at once, on the system calls
// WriteFile makes: the temporary file is created beside the target although
// TMPDIR points elsewhere (renameio would use TMPDIR); it gets its final mode
// before the first write; and after the rename the directory is fsynced (renameio
// never does).
func TestWriteFileSyscalls(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	data := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(data, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpdir := t.TempDir()
	events := straceHelper(t, "openat,fchmod,write,fsync,rename,renameat,renameat2",
		envRole+"=writefile", envDir+"="+path, envIn+"="+data, "TMPDIR="+tmpdir)
	temp := regexp.QuoteMeta(`"`+dir+`/.state.json`) + `\d+"`
	expectSequence(t, events, []expectCall{
		{"openat", `AT_FDCWD, ` + temp + `, O_RDWR\|O_CREAT\|O_EXCL\|O_CLOEXEC, 0600`, "F"},
		{"fchmod", `{F}, 0640`, ""},
		{"write", `{F}, .*`, ""},
		{"fsync", `{F}`, ""},
		{"rename|renameat|renameat2", `(AT_FDCWD, )?` + temp + `, (AT_FDCWD, )?` + q(path) + `.*`, ""},
		{"openat", `AT_FDCWD, ` + q(dir) + `, O_RDONLY\|O_CLOEXEC`, "D"},
		{"fsync", `{D}`, ""},
	})
	for _, e := range events {
		if e.call == "openat" && strings.Contains(e.args, tmpdir) {
			t.Errorf("WriteFile touched TMPDIR: openat(%s)", e.args)
		}
	}
}

// TestInstallActivateSyscalls checks the durability sequence of a first
// issuance: each file created 0600, given its mode, written and fsynced; the
// temporary directory fsynced before its rename; generations/ fsynced after it;
// the switch done by renaming Activate's own temporary symlink over current (not
// renameio.Symlink, which leaves a temporary directory when killed), and the
// lineage directory fsynced after it (renameio.Symlink never fsyncs).
func TestInstallActivateSyscalls(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "example.com")
	in := writeInput(t, mustCA(t).mustIssue(t, 7))
	events := straceHelper(t, "openat,fchmod,write,fsync,rename,renameat,renameat2,symlink,symlinkat,mkdir,mkdirat",
		envRole+"=install", envDir+"="+dir, envIn+"="+in)
	gens := filepath.Join(dir, generationsName)
	tmp := regexp.QuoteMeta(`"`+gens+`/.000001.tmp-`) + `\w+`
	steps := []expectCall{
		{"openat", `AT_FDCWD, ` + tmp + `", O_RDONLY\|O_CLOEXEC`, "T"},
		{"fchmod", `{T}, 0755`, ""},
	}
	files := []struct{ name, mode string }{
		{CertFile, "0644"}, {ChainFile, "0644"}, {FullchainFile, "0644"}, {KeyFile, "0600"}, {CombinedFile, "0600"},
	}
	for i, f := range files {
		fd := fmt.Sprintf("F%d", i)
		steps = append(steps,
			expectCall{"openat", `AT_FDCWD, ` + tmp + `/` + regexp.QuoteMeta(f.name) + `", O_WRONLY\|O_CREAT\|O_EXCL\|O_CLOEXEC, 0600`, fd},
			expectCall{"fchmod", `{` + fd + `}, ` + f.mode, ""},
			expectCall{"write", `{` + fd + `}, .*`, ""},
		)
	}
	for i := range files {
		steps = append(steps, expectCall{"fsync", fmt.Sprintf("{F%d}", i), ""})
	}
	steps = append(steps,
		expectCall{"fsync", `{T}`, ""},
		expectCall{"rename|renameat|renameat2", `(AT_FDCWD, )?` + tmp + `", (AT_FDCWD, )?` + q(filepath.Join(gens, "000001")) + `.*`, ""},
		expectCall{"openat", `AT_FDCWD, ` + q(gens) + `, O_RDONLY\|O_CLOEXEC`, "G"},
		expectCall{"fsync", `{G}`, ""},
		expectCall{"symlink|symlinkat", `"generations/000001", (AT_FDCWD, )?` + regexp.QuoteMeta(`"`+dir+`/.current.tmp-`) + `\w+"`, ""},
		expectCall{"rename|renameat|renameat2", `(AT_FDCWD, )?` + regexp.QuoteMeta(`"`+dir+`/.current.tmp-`) + `\w+", (AT_FDCWD, )?` + q(filepath.Join(dir, CurrentLink)) + `.*`, ""},
		expectCall{"openat", `AT_FDCWD, ` + q(dir) + `, O_RDONLY\|O_CLOEXEC`, "L"},
		expectCall{"fsync", `{L}`, ""},
	)
	expectSequence(t, events, steps)
}

// TestWriteFileTightensLooserMode: renameio.WriteFile keeps an existing file's
// mode even when asked for 0600 (the trap, checked here so that a renameio
// upgrade that changes it is noticed); WriteFile and SavePendingKey apply the
// requested mode.
func TestWriteFileTightensLooserMode(t *testing.T) {
	dir := t.TempDir()
	trap := filepath.Join(dir, "trap.pem")
	if err := os.WriteFile(trap, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := renameio.WriteFile(trap, []byte("secret"), 0o600, renameio.WithTempDir(dir)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(trap); fi.Mode().Perm() != 0o644 {
		t.Logf("renameio.WriteFile now applies the mode (%v): the trap is gone", fi.Mode().Perm())
	}

	path := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := durable.WriteFile(path, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("WriteFile over a 0644 file with 0600: mode %v", fi.Mode().Perm())
	}

	s := mustOpen(t, filepath.Join(dir, "example.com"))
	pk := filepath.Join(s.Dir(), pendingKeyName)
	if err := os.WriteFile(pk, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePendingKey([]byte("secret")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(pk); fi.Mode().Perm() != 0o600 {
		t.Errorf("SavePendingKey over a 0644 file: mode %v", fi.Mode().Perm())
	}
}

// TestRecoverRemovesSymlinkAndWriteFileLeftovers: a killed Activate leaves its
// .current.tmp-* link; a killed renameio.Symlink leaves a .current<digits>
// directory (made exactly as renameio makes it); a killed WriteFile leaves
// .<name><digits>. Recover removes them all, and nothing that merely looks alike.
func TestRecoverRemovesSymlinkAndWriteFileLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "example.com")
	s := mustOpen(t, dir)
	mustInstallActivate(t, s, mustCA(t).mustIssue(t, 1))
	join := func(name string) string { return filepath.Join(dir, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// Leftovers.
	must(os.Symlink("generations/000001", join(".current.tmp-abc123")))
	rdir, err := os.MkdirTemp(dir, "."+CurrentLink) // what renameio.Symlink does
	must(err)
	must(os.Symlink("generations/000001", filepath.Join(rdir, "tmp.symlink")))
	must(os.WriteFile(join(".state.json8812736451"), []byte("{"), 0o600))
	must(os.WriteFile(join(".pending.key42"), []byte("k"), 0o600))
	must(os.WriteFile(join("notes9"), nil, 0o600))
	must(os.WriteFile(join(".notes91"), []byte("n"), 0o600)) // renameio temp of an existing file
	must(os.MkdirAll(filepath.Join(dir, generationsName, ".000005.tmp-x", "half"), 0o755))
	must(os.Remove(join(CertFile))) // a stable link lost

	// Look-alikes that stay.
	keep := []string{".backup1", ".current77", "README"}
	must(os.WriteFile(join(".backup1"), nil, 0o600))
	must(os.MkdirAll(filepath.Join(join(".current77"), "mine"), 0o755))
	must(os.WriteFile(join("README"), nil, 0o600))

	rep, err := s.Recover()
	must(err)
	want := []string{
		filepath.Join(dir, generationsName, ".000005.tmp-x"),
		join(".current.tmp-abc123"), rdir, join(".state.json8812736451"), join(".pending.key42"), join(".notes91"),
	}
	for _, w := range want {
		if !slices.Contains(rep.Removed, w) {
			t.Errorf("Recover did not remove %s (removed %q)", w, rep.Removed)
		}
		if _, err := os.Lstat(w); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there", w)
		}
	}
	if len(rep.Removed) != len(want) {
		t.Errorf("Recover removed %q, want exactly %q", rep.Removed, want)
	}
	for _, k := range append(keep, "notes9") {
		if _, err := os.Lstat(join(k)); err != nil {
			t.Errorf("Recover removed %s: %v", k, err)
		}
	}
	if len(rep.LinksCreated) != 1 || rep.LinksCreated[0] != join(CertFile) {
		t.Errorf("LinksCreated = %q, want [%s]", rep.LinksCreated, join(CertFile))
	}
	if _, err := served(dir); err != nil {
		t.Errorf("served after Recover: %v", err)
	}
}
