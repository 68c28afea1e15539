package renew

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
)

// Preflighter is implemented by an Issuer that can check, on this machine
// and without contacting the CA, what an order for req would need: a
// challenge directory it can write, a port it can bind, credentials it
// has. req.Key is nil.
//
// The Renewer calls Preflight before every order (step 7 of a run, after
// the decision that the lineage is due and the backoff gate), so that such
// a problem fails the run at once, with its fix, instead of creating orders
// at the CA that cannot be validated. Problems are reported as
// *LocalError values (errors.Is ErrLocal); several may be joined. Such a
// failure is not counted against the CA's cross-run backoff. Preflight must
// be safe for concurrent use and honour ctx.
type Preflighter interface {
	Preflight(ctx context.Context, req IssueRequest) error
}

// hookPreflighter is implemented by hooks that can check they could run
// (hooks.CommandHook: the program exists and is executable).
type hookPreflighter interface {
	Preflight(ctx context.Context) error
}

// Preflight runs, for c, the local checks a run makes before it orders
// (the Issuer's Preflight, when it implements Preflighter, and each deploy
// hook that can check itself), plus a check that the lineage directory (or
// Root, before the first run) is writable by this process (access(2): it
// writes nothing there). It takes no lock and contacts no CA; what it
// changes is the Issuer's (acmeissuer probes the webroot with a file it
// removes at once, and binds and closes listen addresses). It returns every problem found, joined; each one is
// a *LocalError naming the fix, or a configuration error (ErrConfig for the
// Renewer, one naming the field for the Certificate). A nil Issuer is not checked (the CLI's dry run has none).
func (r *Renewer) Preflight(ctx context.Context, c Certificate) error {
	if err := r.check(false); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	var errs []error
	dir := r.lineageDir(c.Name)
	if _, err := os.Lstat(dir); err == nil {
		errs = append(errs, CheckWritableDir("lineage directory", dir, false))
	} else {
		errs = append(errs, CheckWritableDir("storage root", r.Root, false))
	}
	errs = append(errs, r.preflight(ctx, c))
	return errors.Join(errs...)
}

// preflight is the part of Preflight a run makes at step 7: the Issuer and
// the hooks (the lineage directory is known to be writable by then).
func (r *Renewer) preflight(ctx context.Context, c Certificate) error {
	var errs []error
	for _, h := range c.Hooks {
		p, ok := h.(hookPreflighter)
		if !ok {
			continue
		}
		if err := p.Preflight(ctx); err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, &LocalError{
				What: fmt.Sprintf("deploy hook %q", h.Name()),
				Err:  err,
				Fix:  "install the program or correct the hook's command line; nothing was ordered, so the CA has not issued a certificate this hook could not deploy",
			})
		}
	}
	if p, ok := r.Issuer.(Preflighter); ok {
		if err := p.Preflight(ctx, IssueRequest{Name: c.Name, Domains: c.Domains, Profile: c.Profile}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CheckWritableDir reports whether this process can create and remove
// files in dir. When dir does not exist, it checks that the nearest
// existing ancestor lets dir be created, as os.MkdirAll would. what names
// dir in the error ("storage root"). A problem is a *LocalError whose Fix
// names the directory's owner, the user this process runs as and the
// command that fixes it; nil means writable.
//
// With probe false it asks access(2) (W_OK|X_OK, for the effective user):
// it changes nothing, not even the directory's modification time, and can
// be wrong where access(2) is (some network file systems). With probe true
// it checks the way a writer will, by creating and removing a probe file
// (".renewkit-probe-*") in dir, or a probe directory in the nearest
// existing ancestor; that changes the directory's modification time.
func CheckWritableDir(what, dir string, probe bool) error {
	existing := dir
	for {
		fi, err := os.Stat(existing)
		if err == nil {
			if !fi.IsDir() {
				return &LocalError{What: what + " " + dir, Err: fmt.Errorf("%s is not a directory", existing),
					Fix: "move " + existing + " away or choose another path"}
			}
			break
		}
		// A missing directory, or a path through a file (ENOTDIR): walk up
		// to what exists.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return &LocalError{What: what + " " + dir, Err: err, Fix: ownerFix(existing, dir)}
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			return &LocalError{What: what + " " + dir, Err: err}
		}
		existing = parent
	}
	if probe {
		removeStaleProbes(existing)
	}
	var err error
	switch {
	case !probe:
		err = canWrite(existing)
	case existing == dir:
		var f *os.File
		f, err = os.CreateTemp(dir, probePattern)
		if err == nil {
			name := f.Name()
			err = errors.Join(f.Close(), os.Remove(name))
		}
	default:
		var d string
		d, err = os.MkdirTemp(existing, probePattern)
		if err == nil {
			err = os.Remove(d)
		}
	}
	if err == nil {
		return nil
	}
	// The probe's own name would only confuse: keep the cause.
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	e := &LocalError{What: what + " " + dir, Err: fmt.Errorf("cannot create files in it: %w", err)}
	switch {
	case errors.Is(err, fs.ErrPermission):
		e.Fix = ownerFix(existing, dir)
	case errors.Is(err, syscall.EROFS):
		e.Fix = readOnlyFix(dir)
	}
	if existing != dir {
		e.Err = fmt.Errorf("cannot be created in %s: %w", existing, err)
	}
	return e
}

// ownerFix says who owns existing, who this process runs as, and the
// command that lets this process write dir (existing is dir or its
// nearest existing ancestor).
func ownerFix(existing, dir string) string {
	me := os.Geteuid()
	fi, err := os.Stat(existing)
	uid, ok := -1, false
	if err == nil {
		uid, ok = ownerOf(fi)
	}
	if existing != dir {
		owner := ""
		if ok {
			owner = fmt.Sprintf("%s is owned by %s and ", existing, userDesc(uid))
		}
		// Every level to create must end up this user's: create them all,
		// then give the topmost new one (and so everything below) away.
		top := dir
		for filepath.Dir(top) != existing && filepath.Dir(top) != top {
			top = filepath.Dir(top)
		}
		if top == dir {
			return fmt.Sprintf("%sthis process runs as %s: create the directory for it as root: install -d -o %s %s", owner, userDesc(me), userArg(me), dir)
		}
		return fmt.Sprintf("%sthis process runs as %s: create the directories for it as root: mkdir -p %s && chown -R %s %s", owner, userDesc(me), dir, userArg(me), top)
	}
	if !ok {
		// Its owner could not be seen: a directory above it is closed to
		// this user. Never guess: name the deepest directory that can be
		// seen, which is the one closed to it, and its owner.
		for p := filepath.Dir(dir); p != filepath.Dir(p); p = filepath.Dir(p) {
			pfi, err := os.Stat(p)
			if err != nil {
				continue
			}
			if puid, pok := ownerOf(pfi); pok && puid != me {
				return fmt.Sprintf("%s is owned by %s (mode %v) and closed to this process, which runs as %s (a run as %s made it): as root, run: chown -R %s %s",
					p, userDesc(puid), pfi.Mode().Perm(), userDesc(me), userArg(puid), userArg(me), p)
			}
			break
		}
		return fmt.Sprintf("%s cannot be examined by %s: a directory on its path is closed to this user; give it search (x) permission on each", dir, userDesc(me))
	}
	if uid != me {
		return fmt.Sprintf("%s is owned by %s but this process runs as %s: as root, run: chown -R %s %s", dir, userDesc(uid), userDesc(me), userArg(me), dir)
	}
	return fmt.Sprintf("this process runs as %s, which owns %s: give the owner write permission (chmod u+w %s) or check for a read-only mount", userDesc(me), dir, dir)
}

// readOnlyFix is the fix for a directory on a read-only file system, which
// is most often systemd's sandbox (ProtectSystem=strict).
func readOnlyFix(dir string) string {
	return "the file system is read-only for this process: under systemd's ProtectSystem=strict, add ReadWritePaths=" + dir +
		" to the service (systemctl edit renew-certificates.service); otherwise remount it read-write"
}

// userDesc describes uid as "name (uid N)", or "uid N" when it has no name.
func userDesc(uid int) string {
	if n := userArg(uid); n != strconv.Itoa(uid) {
		return n + " (uid " + strconv.Itoa(uid) + ")"
	}
	return "uid " + strconv.Itoa(uid)
}

// userArg names uid for a command line: its user name, or the number.
func userArg(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return u.Username
	}
	return id
}

// localDirError marks err, from opening or locking the lineage directory
// dir, as a *LocalError when its cause is on this machine (permissions,
// another owner, a read-only file system, modes atomicfs refuses), naming
// the fix where it can. Other errors are returned as they are.
func localDirError(what, dir string, err error) error {
	if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, atomicfs.ErrInsecure) && !errors.Is(err, syscall.EROFS) {
		return err
	}
	existing := dir
	for {
		if _, serr := os.Stat(existing); serr == nil || filepath.Dir(existing) == existing {
			break
		}
		existing = filepath.Dir(existing)
	}
	e := &LocalError{What: what + " " + dir, Err: err}
	fi, serr := os.Stat(existing)
	uid, ok := 0, false
	if serr == nil {
		uid, ok = ownerOf(fi)
	}
	switch {
	case ok && uid != os.Geteuid():
		// A first run as another user (root, by hand) usually left the
		// whole storage root to that user: fix the root, not one lineage.
		fixDir := existing
		if p := filepath.Dir(existing); p != existing {
			if pfi, err := os.Stat(p); err == nil {
				if puid, ok := ownerOf(pfi); ok && puid == uid {
					fixDir = p
				}
			}
		}
		e.Fix = ownerFix(fixDir, fixDir)
	case errors.Is(err, fs.ErrPermission):
		e.Fix = ownerFix(existing, dir)
	case errors.Is(err, syscall.EROFS):
		e.Fix = readOnlyFix(dir)
	}
	return e
}

// probePattern names the probe files and directories CheckWritableDir
// creates and removes at once.
const probePattern = ".renewkit-probe-*"

// removeStaleProbes removes probes a killed process left in dir: a probe
// lives for microseconds, so one older than a minute is a leftover
// (nothing may grow without bound, even in a webroot). Best effort.
func removeStaleProbes(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, probePattern))
	for _, name := range names {
		if fi, err := os.Lstat(name); err == nil && time.Since(fi.ModTime()) > time.Minute {
			_ = os.Remove(name) // a file, or the empty probe directory
		}
	}
}
