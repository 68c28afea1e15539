package atomicfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/safefile"
)

// RecoverReport says what [Store.Recover] found and did.
type RecoverReport struct {
	// Current is the served generation; zero if there is none usable.
	Current Generation
	// Newer lists the complete generations newer than Current, oldest first: an
	// install that completed but whose Activate did not. The caller decides
	// whether to roll forward to the newest with Activate. With no usable
	// current, every complete generation is listed.
	Newer []Generation
	// Incomplete lists generation directories with a file missing or empty. They
	// cannot come from Install (which renames only complete directories), so
	// Recover leaves them for a human; Prune deletes those older than current.
	Incomplete []Generation
	// Untrusted lists complete generations newer than Current that are left
	// out of Newer because another user could have written them: the
	// directory or one of its files is owned by another user or writable by
	// group or others. Each error matches [ErrInsecure] and names the path.
	// They are never rolled forward; Recover leaves them for a human.
	Untrusted []Untrusted
	// Removed lists the temporary entries deleted.
	Removed []string
	// LinksCreated lists the stable links that were missing and were created.
	LinksCreated []string
}

// Untrusted is a generation that failed the ownership and mode checks, and
// why.
type Untrusted struct {
	Generation
	Err error
}

// Recover cleans up after a killed run and reports the lineage's state. The caller
// must hold the lineage lock. It:
//
//   - deletes temporary generation directories (generations/.N.tmp-*), Activate's
//     temporary links (.current.tmp-*), and renameio's temporary entries
//     (.<name><digits>: the files of killed atomic writes such as state.json's,
//     renameio.Symlink's directories) in the
//     lineage directory;
//   - reports the current generation, the complete generations newer than it
//     (those another user could have written apart, in Untrusted), and
//     incomplete generation directories;
//   - recreates missing stable links when current is usable.
//
// It never deletes a complete or incomplete generation, and never changes
// current. A current that is dangling, not a symbolic link, or pointing outside
// generations/, is returned as an error along with the report, which is filled in
// as far as possible (Current zero, Newer listing every complete generation).
// Removing temporary entries needs no fsync: one that comes back after a power
// loss is deleted by the next Recover.
func (s *Store) Recover() (RecoverReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rep RecoverReport

	gens, _, tmps, err := s.scan()
	if err != nil {
		return rep, err
	}
	for _, name := range tmps {
		path := filepath.Join(s.gens, name)
		if err := os.RemoveAll(path); err != nil {
			return rep, fmt.Errorf("atomicfs: recover: %w", err)
		}
		rep.Removed = append(rep.Removed, path)
	}
	removed, err := s.removeLineageTemps()
	rep.Removed = append(rep.Removed, removed...)
	if err != nil {
		return rep, err
	}

	cur, state, curErr := s.current()
	if state == currentOK {
		rep.Current = cur
	}
	for _, g := range gens {
		switch {
		case missingFile(g.Dir) != "":
			rep.Incomplete = append(rep.Incomplete, g)
		case g.Seq > rep.Current.Seq:
			if err := checkGenerationTrust(g.Dir); err != nil {
				rep.Untrusted = append(rep.Untrusted, Untrusted{Generation: g, Err: err})
				continue
			}
			rep.Newer = append(rep.Newer, g)
		}
	}
	var errs []error
	if state == currentBad {
		errs = append(errs, fmt.Errorf("atomicfs: recover: %w", curErr))
	}
	if state == currentOK {
		missing, err := s.checkStableLinks()
		if err != nil {
			errs = append(errs, fmt.Errorf("atomicfs: recover: %w", err))
		}
		for _, name := range missing {
			if err := s.createStableLink(name); err != nil {
				errs = append(errs, fmt.Errorf("atomicfs: recover: %w", err))
				continue
			}
			rep.LinksCreated = append(rep.LinksCreated, filepath.Join(s.dir, name))
		}
		if len(rep.LinksCreated) > 0 {
			// fsync the lineage directory so the recreated links are durable.
			if err := durable.SyncDir(s.dir); err != nil {
				errs = append(errs, fmt.Errorf("atomicfs: recover: sync %s: %w", s.dir, err))
			}
		}
	}
	return rep, errors.Join(errs...)
}

// removeLineageTemps deletes Activate's and renameio's temporary entries in the
// lineage directory.
func (s *Store) removeLineageTemps() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("atomicfs: recover: %w", err)
	}
	exists := make(map[string]bool, len(entries)+len(renameioTargets))
	for _, e := range entries {
		exists[e.Name()] = true
	}
	for _, name := range renameioTargets {
		exists[name] = true
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(s.dir, name)
		var ok bool
		switch {
		case strings.HasPrefix(name, currentTmpStem):
			ok = e.Type()&fs.ModeSymlink != 0 || e.Type().IsRegular()
		case durable.IsTemp(name, exists):
			ok = e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0 || (e.IsDir() && durable.IsSymlinkTempDir(path))
		}
		if !ok {
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			return removed, fmt.Errorf("atomicfs: recover: %w", err)
		}
		removed = append(removed, path)
	}
	return removed, nil
}

// Prune deletes old generations and returns them, oldest first. It keeps the
// newest keep (≥ 1) complete generations, and never deletes current or anything
// newer than it; incomplete generation directories older than current are
// deleted. With no current link it deletes nothing; with a broken one it
// returns the error and deletes nothing. The caller must hold the lineage lock.
//
// Each victim is first renamed to a temporary name, so a killed process never
// leaves a half-deleted directory under a generation name; Recover deletes the
// rest. The renames are not fsynced: a power loss may bring a victim back under
// its name, possibly half deleted (its files are whole or absent), and the next
// Prune deletes it (an incomplete directory older than current), so the fsync
// would protect nothing (the power-loss tests found no cut that fails without
// it).
func (s *Store) Prune(keep int) ([]Generation, error) {
	if keep < 1 {
		return nil, fmt.Errorf("atomicfs: prune %s: keep must be at least 1, got %d", s.dir, keep)
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	cur, state, err := s.current()
	switch state {
	case currentMissing:
		return nil, nil
	case currentBad:
		return nil, fmt.Errorf("atomicfs: prune: %w", err)
	}
	gens, _, _, err := s.scan()
	if err != nil {
		return nil, err
	}
	var victims []Generation
	kept := 0
	for _, g := range slices.Backward(gens) {
		complete := missingFile(g.Dir) == ""
		switch {
		case g.Seq >= cur.Seq, complete && kept < keep:
			if complete {
				kept++
			}
		default:
			victims = append(victims, g)
		}
	}
	if len(victims) == 0 {
		return nil, nil
	}
	slices.Reverse(victims)

	doomed := make([]string, 0, len(victims))
	for _, g := range victims {
		tmp := filepath.Join(s.gens, "."+formatSeq(g.Seq)+tmpInfix+"prune-"+randSuffix())
		if err := os.Rename(g.Dir, tmp); err != nil {
			return nil, fmt.Errorf("atomicfs: prune generation %d: %w", g.Seq, err)
		}
		doomed = append(doomed, tmp)
	}
	for _, tmp := range doomed {
		if err := os.RemoveAll(tmp); err != nil {
			return victims, fmt.Errorf("atomicfs: prune: %w (Recover deletes the rest)", err)
		}
	}
	return victims, nil
}

// checkGenerationTrust applies the lineage directory's ownership and mode
// rules to a generation directory and its five files: owned by the
// effective user, not writable by group or others, and (for the files)
// regular files, not links. Install creates them so; anything else was made
// or changed by someone else.
func checkGenerationTrust(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInsecure, err)
	}
	if err := checkStrict(dir, fi); err != nil {
		return err
	}
	for _, name := range stableFiles {
		path := filepath.Join(dir, name)
		fi, err := os.Lstat(path)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInsecure, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is a %s, not a regular file", ErrInsecure, path, safefile.FileKind(fi.Mode()))
		}
		if fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%w: %s is writable by group or others (mode %v)", ErrInsecure, path, fi.Mode())
		}
		if uid, ok := safefile.OwnerUID(fi); ok && uid != os.Geteuid() {
			return fmt.Errorf("%w: %s is owned by uid %d, not by uid %d running this process", ErrInsecure, path, uid, os.Geteuid())
		}
	}
	return nil
}
