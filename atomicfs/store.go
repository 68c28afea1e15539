package atomicfs

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/renewkit/renewkit/internal/crashpoint"
	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/safefile"
)

// maxGeneration is the highest generation number. A directory name above
// it is not a generation (it is ignored, like any other foreign name), so
// that a planted or damaged name cannot make the next number overflow; once
// a lineage reaches it, [Store.Install] fails with an error saying so. At one
// renewal a day that is over two million years.
const maxGeneration = 999_999_999

// ErrInsecure is matched (with [errors.Is]) by the error Open returns when the
// lineage directory is writable by its group or by others, or is owned by another
// user than the one running the process. The error names the directory and the
// reason. Another user who can write the directory could swap a generation or a
// link and have a server load their key.
// The same holds for generations/, for a lineage directory that is a
// symbolic link, and (in [RecoverReport.Untrusted]) for generation
// directories and their files.
var ErrInsecure = safefile.ErrInsecure

// Files is one issuance in PEM form.
type Files struct {
	Cert  []byte // the leaf certificate; required
	Chain []byte // the issuer certificates, leaf's issuer first; may be empty
	Key   []byte // the private key; required
}

// Generation identifies one immutable generation directory of a lineage.
// It is a plain value.
type Generation struct {
	Seq int    // 1, 2, 3, …
	Dir string // <lineage>/generations/<Seq as %06d>
}

// Plausible reports whether g.Seq is a number a generation can have: 1 to
// 999,999,999, the highest (a directory name above it is not a generation;
// a lineage that reaches it can install no more). It does not look at Dir
// or at the disk. Package renew uses it to refuse a damaged state.json.
func (g Generation) Plausible() bool { return g.Seq >= 1 && g.Seq <= maxGeneration }

// Store is one lineage directory. Its methods are safe for concurrent use by
// multiple goroutines: the mutating ones (Install, Activate, Recover, Prune and the
// pending-key ones) are serialised by the Store, and across processes the caller
// must hold the lineage lock. Readers need no lock.
type Store struct {
	dir      string
	gens     string
	keyMode  fs.FileMode
	certMode fs.FileMode
	dirMode  fs.FileMode
	gid      int               // -1: leave groups alone
	crashAt  func(step string) // test seam; nil in production

	mu sync.Mutex // serialises mutating methods
}

// Modes are the permissions and the group of the files and directories a
// [Store] creates. The zero Modes is the default: keys 0600, certificates
// 0644, directories 0755, the process's group. A Modes is a plain value.
type Modes struct {
	// Key is the mode of privkey.pem, combined.pem and pending.key. 0 means
	// 0600, or 0640 with a Group. Modes granting more than owner read-write
	// and group read are refused.
	Key fs.FileMode
	// Cert is the mode of cert.pem, chain.pem and fullchain.pem. 0 means
	// 0644. Modes with write or execute bits for group or others are
	// refused.
	Cert fs.FileMode
	// Dir is the mode of the directories the Store creates (the lineage
	// directory on first use, generations). 0 means 0755; 0750 with a Group
	// keeps others out. Modes writable by group or others are refused.
	Dir fs.FileMode
	// Group is the numeric id of the group every file and directory the
	// Store creates is given (as os/user's Group.Gid spells it), so that a
	// server running under that group can read the key with key mode 0640
	// (the default once a group is set). The process must be allowed to
	// chown to it (be a member, or root). Empty leaves the process's group.
	Group string
}

// Open returns the Store for the lineage directory dir.
//
// On an existing lineage Open only stats dir: it writes nothing, so the "nothing
// to renew" path stays cheap. A missing dir is created (with generations/ and any
// missing parents, mode [Modes.Dir]), and it and its parent are fsynced.
//
// Open refuses, with an error matching [ErrInsecure], a lineage directory or a
// generations/ directory in it that is writable by group or others, owned by
// another user than the effective user, or a symbolic link. (The storage
// root above the lineage directory may be a link.)
func Open(dir string, m Modes) (*Store, error) {
	if err := durable.Supported(); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("atomicfs: open: empty lineage directory")
	}
	gid := -1
	if m.Group != "" {
		n, err := strconv.Atoi(m.Group)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("atomicfs: open %s: invalid group id %q: want a number", dir, m.Group)
		}
		gid = n
	}
	if m.Key == 0 {
		m.Key = 0o600
		if gid >= 0 {
			m.Key = 0o640
		}
	}
	if m.Cert == 0 {
		m.Cert = 0o644
	}
	if m.Dir == 0 {
		m.Dir = 0o755
	}
	switch {
	case m.Key&^0o640 != 0 || m.Key&0o400 == 0:
		return nil, fmt.Errorf("atomicfs: open %s: key mode %v: want owner-readable with at most owner read-write and group read (0600, 0640, 0400, 0440)", dir, m.Key)
	case m.Cert&^0o644 != 0 || m.Cert&0o400 == 0:
		return nil, fmt.Errorf("atomicfs: open %s: certificate mode %v: want owner-readable, writable by the owner only, no execute bits (0644, 0640, 0600, 0444)", dir, m.Cert)
	case m.Dir&^0o755 != 0 || m.Dir&0o700 != 0o700:
		return nil, fmt.Errorf("atomicfs: open %s: directory mode %v: want rwx for the owner and no write for group or others (0755, 0750, 0700)", dir, m.Dir)
	}

	s := &Store{
		dir:      filepath.Clean(dir),
		keyMode:  m.Key,
		certMode: m.Cert,
		dirMode:  m.Dir,
		gid:      gid,
	}
	s.gens = filepath.Join(s.dir, generationsName)

	fi, err := os.Lstat(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.create(); err != nil {
			return nil, err
		}
		fi, err = os.Lstat(s.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("atomicfs: open lineage: %w", err)
	}
	if err := checkStrict(s.dir, fi); err != nil {
		return nil, err
	}
	// generations/ holds what gets rolled forward and served: it gets the
	// same checks (it may be missing: Install creates it).
	if fi, err := os.Lstat(s.gens); err == nil {
		if err := checkStrict(s.gens, fi); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("atomicfs: open lineage: %w", err)
	}
	return s, nil
}

// create makes a missing lineage directory and its generations/ directory.
func (s *Store) create() error {
	parent := filepath.Dir(s.dir)
	if err := durable.MkdirAll(parent, s.dirMode); err != nil {
		return fmt.Errorf("atomicfs: create lineage %s: %w", s.dir, err)
	}
	if err := s.mkdir(s.dir); err != nil {
		return err
	}
	if err := s.mkdir(s.gens); err != nil {
		return err
	}
	// fsync the new lineage directory, then its parent, so that the entries of
	// generations/ and of the lineage directory itself survive a power loss: the
	// generations Install fsyncs into generations/ would vanish with them.
	if err := durable.SyncDir(s.dir); err != nil {
		return fmt.Errorf("atomicfs: create lineage %s: sync: %w", s.dir, err)
	}
	if err := durable.SyncDir(parent); err != nil {
		return fmt.Errorf("atomicfs: create lineage %s: sync %s: %w", s.dir, parent, err)
	}
	return nil
}

// mkdir creates dir with the Store's directory mode and group; an existing
// directory is fine (another process may have created it first).
func (s *Store) mkdir(dir string) error {
	if err := os.Mkdir(dir, s.dirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("atomicfs: create %s: %w", dir, err)
	}
	return s.setDirAttrs(dir)
}

// setDirAttrs gives a directory the Store's group and exact mode (the umask may
// have removed bits).
func (s *Store) setDirAttrs(dir string) error {
	if s.gid >= 0 {
		if err := os.Lchown(dir, -1, s.gid); err != nil {
			return fmt.Errorf("atomicfs: set group of %s: %w", dir, err)
		}
	}
	if err := os.Chmod(dir, s.dirMode); err != nil {
		return fmt.Errorf("atomicfs: chmod %s: %w", dir, err)
	}
	return nil
}

// checkStrict is the StrictModes check of the lineage directory and of
// generations/ (fi from Lstat). A symbolic link is refused: whoever can
// change it, or anything on the way to where it leads, decides what is
// served, and the checks below would look at the link's target only.
func checkStrict(dir string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%w: %s is a symbolic link; refusing to follow it (point the storage root at the real directory, or move the directory into the root)", ErrInsecure, dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("atomicfs: open lineage %s: not a directory (mode %v)", dir, fi.Mode())
	}
	return safefile.CheckOwnerMode(dir, fi)
}

// Dir returns the lineage directory.
func (s *Store) Dir() string { return s.dir }

// hit calls the crash-point seams, if any: the package's own test hook and
// the crash suite's named points (an empty function in normal builds). A
// nil check is its production cost.
func (s *Store) hit(step string) {
	crashpoint.Hit("atomicfs", step)
	if s.crashAt != nil {
		s.crashAt(step)
	}
}

// generation returns the Generation with sequence number seq.
func (s *Store) generation(seq int) Generation {
	return Generation{Seq: seq, Dir: filepath.Join(s.gens, formatSeq(seq))}
}

// checkGeneration verifies that g is a generation of this Store.
func (s *Store) checkGeneration(g Generation) error {
	if !g.Plausible() {
		return fmt.Errorf("atomicfs: %s: invalid generation number %d", s.dir, g.Seq)
	}
	if want := s.generation(g.Seq).Dir; g.Dir != "" && filepath.Clean(g.Dir) != want {
		return fmt.Errorf("atomicfs: generation %d has directory %s, want %s", g.Seq, g.Dir, want)
	}
	return nil
}

// formatSeq formats a sequence number as a generation directory name (%06d).
func formatSeq(seq int) string {
	s := strconv.Itoa(seq)
	if len(s) < seqWidth {
		s = strings.Repeat("0", seqWidth-len(s)) + s
	}
	return s
}

// parseSeq parses a generation directory name; only the canonical form of a
// number from 1 to maxGeneration (as formatSeq writes it) is accepted.
func parseSeq(name string) (int, bool) {
	if len(name) < seqWidth || len(name) > len(strconv.Itoa(maxGeneration)) {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(name)
	if err != nil || n < 1 || n > maxGeneration || formatSeq(n) != name {
		return 0, false
	}
	return n, true
}

// parseTempSeq parses ".NNNNNN.tmp-<anything>", a temporary generation directory.
func parseTempSeq(name string) (int, bool) {
	if !strings.HasPrefix(name, ".") {
		return 0, false
	}
	num, _, ok := strings.Cut(name[1:], tmpInfix)
	if !ok {
		return 0, false
	}
	return parseSeq(num)
}

// randSuffix returns a random suffix for temporary names.
func randSuffix() string { return strconv.FormatUint(rand.Uint64(), 36) }

type currentState int

const (
	currentOK      currentState = iota
	currentMissing              // no current link: a new lineage
	currentBad                  // dangling, not a link, or pointing elsewhere
)

// Current returns the generation the current link points at: one readlink and one
// lstat of the generation directory.
//
// With no current link (a new lineage) the error wraps [fs.ErrNotExist]. It also
// does when current is dangling (its generation directory is gone); the message
// says so. A current that is not a symbolic link, or points outside generations/,
// is an error too, never guessed around.
func (s *Store) Current() (Generation, error) {
	g, _, err := s.current()
	return g, err
}

func (s *Store) current() (Generation, currentState, error) {
	link := filepath.Join(s.dir, CurrentLink)
	target, err := os.Readlink(link)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Generation{}, currentMissing, fmt.Errorf("atomicfs: %s: no current generation: %w", link, err)
		}
		if fi, lerr := os.Lstat(link); lerr == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return Generation{}, currentBad, fmt.Errorf("atomicfs: %s is a %s (mode %v), not a symbolic link to a generation; move it away", link, safefile.FileKind(fi.Mode()), fi.Mode())
		}
		return Generation{}, currentBad, fmt.Errorf("atomicfs: read %s: %w", link, err)
	}
	dir, name := filepath.Split(filepath.Clean(target))
	seq, ok := parseSeq(name)
	if !ok || dir != generationsName+string(filepath.Separator) {
		return Generation{}, currentBad, fmt.Errorf("atomicfs: %s -> %q: not a generation of this lineage (want %s/NNNNNN)", link, target, generationsName)
	}
	g := s.generation(seq)
	fi, err := os.Lstat(g.Dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Generation{}, currentBad, fmt.Errorf("atomicfs: %s -> %s is dangling: %w", link, target, err)
		}
		return Generation{}, currentBad, fmt.Errorf("atomicfs: %s -> %s: %w", link, target, err)
	}
	if !fi.IsDir() {
		return Generation{}, currentBad, fmt.Errorf("atomicfs: %s -> %s: generation is a %s, not a directory", link, target, safefile.FileKind(fi.Mode()))
	}
	return g, currentOK, nil
}

// missingFile returns the first file that makes the generation directory dir
// incomplete, or "" if it is complete: all five files present as regular files,
// and all but chain.pem non-empty.
func missingFile(dir string) string {
	for _, name := range stableFiles {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || (fi.Size() == 0 && name != ChainFile) {
			return name
		}
	}
	return ""
}

// scan lists the generation directories (complete or not) in ascending order, and
// the highest sequence number seen in any generation or temporary name.
func (s *Store) scan() (gens []Generation, maxSeq int, tmp []string, err error) {
	entries, err := os.ReadDir(s.gens)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil, nil
	}
	if err != nil {
		return nil, 0, nil, fmt.Errorf("atomicfs: list generations: %w", err)
	}
	for _, e := range entries {
		if seq, ok := parseSeq(e.Name()); ok {
			maxSeq = max(maxSeq, seq)
			if e.IsDir() {
				gens = append(gens, s.generation(seq))
			}
			continue
		}
		if seq, ok := parseTempSeq(e.Name()); ok {
			maxSeq = max(maxSeq, seq)
			tmp = append(tmp, e.Name())
		}
	}
	// Names sort as numbers only while they have the same width.
	slices.SortFunc(gens, func(a, b Generation) int { return a.Seq - b.Seq })
	return gens, maxSeq, tmp, nil
}

// Generations returns the complete generations, oldest first. A generation
// directory with a missing or empty file is left out (Recover reports it).
func (s *Store) Generations() ([]Generation, error) {
	all, _, _, err := s.scan()
	if err != nil {
		return nil, err
	}
	complete := all[:0]
	for _, g := range all {
		if missingFile(g.Dir) == "" {
			complete = append(complete, g)
		}
	}
	return complete, nil
}

// Read returns the certificate, chain and key of generation g.
func (s *Store) Read(g Generation) (Files, error) {
	if err := s.checkGeneration(g); err != nil {
		return Files{}, err
	}
	dir := s.generation(g.Seq).Dir
	var f Files
	for _, x := range []struct {
		name string
		dst  *[]byte
	}{{CertFile, &f.Cert}, {ChainFile, &f.Chain}, {KeyFile, &f.Key}} {
		b, err := safefile.ReadFile(filepath.Join(dir, x.name), safefile.MaxFileSize)
		if err != nil {
			return Files{}, fmt.Errorf("atomicfs: read generation %d: %w", g.Seq, err)
		}
		*x.dst = b
	}
	return f, nil
}

// CurrentSeq returns the sequence number of the generation that the current
// link of the lineage directory dir points to, with one readlink and no
// other system call: it does not check that the generation exists or is
// complete, and needs no Store. It is for hot paths that check the served
// files some other way; use [Store.Current] otherwise.
func CurrentSeq(dir string) (int, error) {
	link := filepath.Join(dir, CurrentLink)
	target, err := os.Readlink(link)
	if err != nil {
		return 0, fmt.Errorf("atomicfs: read %s: %w", link, err)
	}
	d, name := filepath.Split(target)
	seq, ok := parseSeq(name)
	if !ok || d != generationsName+string(filepath.Separator) {
		return 0, fmt.Errorf("atomicfs: %s -> %q: not a generation of this lineage (want %s/NNNNNN)", link, target, generationsName)
	}
	return seq, nil
}
