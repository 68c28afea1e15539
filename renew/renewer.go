package renew

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/safefile"
	"github.com/renewkit/renewkit/lockfile"
)

// Renewer runs certificates through the renewal state machine described in
// the package documentation.
//
// Its exported fields are configuration: set them before the first call and
// do not change them afterwards. Every zero value is a documented default.
// A Renewer is safe for concurrent use; concurrent Runs over the same
// lineage exclude each other through the lineage's lock file, Root/NAME/.lock
// (one gets Locked).
type Renewer struct {
	// Root is the storage root; each lineage lives in Root/NAME. Required.
	// It must be on a local file system (see the package documentation).
	// An existing Root gets the lineage directories' rules (see
	// atomicfs.ErrInsecure): one its group or others can write, or that
	// another user owns, fails every run, since whoever can write it can
	// swap a lineage.
	Root string
	// Issuer obtains certificates. Required to renew; Status does not use it.
	// When it also implements Resumer, orders journaled by a killed run are
	// finished instead of ordered again; when it implements RenewalInfoer,
	// ARI windows are fetched and new orders name the certificate they
	// replace.
	Issuer Issuer
	// Retry is the in-run retry policy for issuance; the zero value is
	// backoff.Default() (3 retries, 10 s, 30 s, 90 s, ±20 % jitter).
	Retry backoff.Policy
	// Logger receives one summary record per certificate (msg=certificate)
	// and details at Debug. The summary is at Debug too when nothing
	// happened (NotDue, no hook pending): a timer's run over thousands of
	// lineages writes only what changed or went wrong. Nil discards. Keys
	// never appear in records.
	Logger *slog.Logger
	// Observer receives typed events for metrics; nil means none.
	Observer Observer
	// Concurrency bounds how many lineages run at once; 0 means
	// 4 × GOMAXPROCS. One lineage never runs twice at once.
	Concurrency int
	// Keep is how many generations to keep per lineage (current included);
	// 0 means 3.
	Keep int
	// Roots, when set, must contain a root every issued chain verifies to.
	// Nil checks only that the chain is signed link by link.
	Roots *x509.CertPool
	// ARIInterval is how often the CA's renewal window is fetched per
	// certificate when the CA does not say; 0 means 6 hours.
	ARIInterval time.Duration
	// LockStuckAfter is how long another holder may keep a lineage's lock
	// before a run that finds it held reports LockStuck, a failure, instead
	// of Locked. A holder that is stopped (SIGSTOP), frozen by its cgroup
	// or stuck in the kernel keeps its flock: without this bound every
	// later run would report Locked, "fine", until the certificate expired.
	// 0 means a bound derived per certificate from what a run may take
	// (see Renewer.LockBound); negative means never. Only a run that needs
	// the lock looks: one that finds the lineage not due (the no-op path)
	// takes no lock, so a stuck holder is reported once renewal is due.
	LockStuckAfter time.Duration
	// HookGrace is how long deploy hooks may go on running after ctx ends:
	// a hook running when a stop is asked for finishes (or is killed when
	// HookGrace has passed), and the other hooks of the same generation
	// still start within it, so that a certificate already made current is
	// reloaded before the program exits. Zero kills a running hook as soon
	// as ctx ends. Either way a hook that did not finish stays pending and
	// the next run replays it. A long-running program sets it a little
	// under its shutdown grace period.
	HookGrace time.Duration
	// Fleet, when set, shares the lineages with the other machines serving
	// the same names (fleet mode, see Fleet and the package documentation);
	// nil is the single-machine path, unchanged. A fleet Renewer's Issuer
	// must implement Resumer (Run and Serve refuse it with ErrConfig
	// otherwise).
	Fleet Fleet
	// Modes are the file modes and group of the lineage stores (see
	// atomicfs.Modes); the zero value is atomicfs's default.
	Modes atomicfs.Modes
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time

	// randSrc is the source of randomness for ARI picks and jitter; nil
	// means a randomly seeded source. A test seam.
	randSrc rand.Source
	randMu  sync.Mutex
	rnd     *rand.Rand

	euidOnce sync.Once
	euidVal  int
}

// ErrConfig reports a configuration that cannot be used: a Renewer's that
// is not good enough to run, or an Issuer's (renew/acmeissuer's New, and
// its account registration refused for want of AgreeTOS or EAB). A
// *ConfigError in the error's chain names the field.
var ErrConfig = errors.New("renew: bad configuration")

// configError reports a Renewer field that cannot be used: ErrConfig
// wrapping a *ConfigError naming the field.
func configError(field string, err error) error {
	return fmt.Errorf("%w: %w", ErrConfig, &ConfigError{Field: field, Err: err})
}

func (r *Renewer) check(needIssuer bool) error {
	if r.Root == "" {
		return configError("Root", errors.New("empty"))
	}
	if needIssuer && r.Issuer == nil {
		return configError("Issuer", errors.New("nil"))
	}
	if r.Keep < 0 {
		return configError("Keep", errors.New("negative"))
	}
	if _, ok := r.Issuer.(Resumer); r.Fleet != nil && r.Issuer != nil && !ok {
		// Without Resume, an order journaled in the fleet by a node that
		// stopped after finalize could only be dropped and ordered again:
		// a second issuance for one renewal.
		return configError("Fleet", fmt.Errorf("set, but the Issuer (%T) cannot resume orders (it does not implement Resumer): in fleet mode another node finishes an order a stopped node journaled, which needs Resume", r.Issuer))
	}
	if err := safefile.CheckDir(r.Root); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A missing Root is created with the lineage's modes.
		if le := rootOwnerError(r.Root, r.euid()); le != nil {
			return le
		}
		return configError("Root", err)
	}
	return nil
}

// CheckRoot reports, without creating or changing anything, a storage
// root this Renewer cannot use: one owned by another user than this
// process's (a *LocalError naming the owner and the fix: run as the owner,
// or chown -R), or one writable by its group or others, or a Renewer whose
// configuration is invalid (ErrConfig). A missing Root is no problem (Run
// creates it). Run makes the same check first; a caller that creates
// things under Root before calling Run (an account directory under
// Root/.acme) calls CheckRoot first, so that a run that is refused leaves
// nothing behind.
func (r *Renewer) CheckRoot() error {
	return r.check(false)
}

// rootOwnerError is the *LocalError for a storage root owned by another
// user than uid me, or nil when it is not (another problem, or none).
func rootOwnerError(root string, me int) error {
	fi, err := os.Stat(root)
	if err != nil {
		return nil
	}
	owner, ok := ownerOf(fi)
	if !ok || owner == me {
		return nil
	}
	e := &LocalError{What: "storage root " + root,
		Err: fmt.Errorf("is owned by %s, and this process runs as %s: each lineage must be renewed by one user", userDesc(owner), userDesc(me))}
	if me == 0 {
		e.Fix = fmt.Sprintf("run as its owner (sudo -u %s …, or start the service), not as root; or, to make root its renewer, run: chown -R root %s", userArg(owner), root)
	} else {
		e.Fix = fmt.Sprintf("as root, run: chown -R %s %s", userArg(me), root)
	}
	return e
}

// euid is the effective user id, which owns every lineage directory.
func (r *Renewer) euid() int {
	r.euidOnce.Do(func() { r.euidVal = os.Geteuid() })
	return r.euidVal
}

func (r *Renewer) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Renewer) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	// Every level disabled: nothing is formatted.
	return slog.New(slog.DiscardHandler)
}

func (r *Renewer) keep() int {
	if r.Keep > 0 {
		return r.Keep
	}
	return 3
}

func (r *Renewer) ariInterval() time.Duration {
	if r.ARIInterval > 0 {
		return r.ARIInterval
	}
	return 6 * time.Hour
}

// withRand runs f with the Renewer's random source held.
func (r *Renewer) withRand(f func(*rand.Rand)) {
	r.randMu.Lock()
	defer r.randMu.Unlock()
	if r.rnd == nil {
		src := r.randSrc
		if src == nil {
			src = rand.NewPCG(rand.Uint64(), rand.Uint64())
		}
		r.rnd = rand.New(src)
	}
	f(r.rnd)
}

func (r *Renewer) concurrency(n int) int {
	c := r.Concurrency
	if c <= 0 {
		c = 4 * runtime.GOMAXPROCS(0)
	}
	return max(1, min(c, n))
}

// Run runs each certificate through the renewal state machine and returns
// one Result per certificate, in the order given. Different lineages run in
// parallel, bounded by Concurrency; a name listed twice fails the second
// time. Run returns when every certificate has finished; when ctx ends, runs
// in progress stop before their next irreversible step and report
// Interrupted. Run never panics on bad input: problems are Results.
//
// In fleet mode (Fleet set) Run first reads the fleet's records of every
// certificate in one call (Fleet.View); when that fails, every certificate
// ends Deferred and nothing runs.
func (r *Renewer) Run(ctx context.Context, certs ...Certificate) []Result {
	results := make([]Result, len(certs))
	if err := r.check(true); err != nil {
		// Reported like any other failure: never a silent one.
		for i, c := range certs {
			results[i] = Result{Name: c.Name, Domains: c.Domains, Outcome: Failed, Err: err}
			r.report(results[i])
		}
		return results
	}
	work := make([]int, 0, len(certs))
	seen := make(map[string]bool, len(certs))
	for i, c := range certs {
		if seen[c.Name] {
			results[i] = Result{Name: c.Name, Domains: c.Domains, Outcome: Failed, Err: fmt.Errorf("%w: lineage %q listed twice", errInvalidCertificate, c.Name)}
			r.report(results[i]) // never a silent failure
			continue
		}
		seen[c.Name] = true
		work = append(work, i)
	}
	var recs []*FleetView
	if r.Fleet != nil {
		// (0) One read of the fleet for every lineage.
		var err error
		if recs, err = r.viewFleet(ctx, certs, work); err != nil {
			for _, i := range work {
				if verr := certs[i].validate(); verr != nil {
					results[i] = Result{Outcome: Failed, Err: verr}
				} else {
					results[i] = r.deferredResult(ctx, certs[i], err)
				}
				results[i].Name, results[i].Domains = certs[i].Name, certs[i].Domains
				r.report(results[i])
			}
			return results
		}
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range r.concurrency(len(work)) {
		wg.Go(func() {
			for i := range next {
				var fv *FleetView
				if recs != nil {
					fv = recs[i]
				}
				results[i] = r.runOne(ctx, certs[i], fv)
			}
		})
	}
	for _, i := range work {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

// runOne runs one certificate (with its fleet record in fleet mode, nil
// otherwise) and reports its Result to the log and the Observer.
func (r *Renewer) runOne(ctx context.Context, c Certificate, fv *FleetView) Result {
	start := time.Now()
	res := r.run(ctx, c, fv)
	res.Name = c.Name
	res.Domains = c.Domains
	res.Duration = time.Since(start)
	r.report(res)
	return res
}

func (r *Renewer) report(res Result) {
	if r.Observer != nil {
		defer r.Observer.Finished(res)
	}
	log := r.logger()
	level := slog.LevelInfo
	switch {
	case res.Outcome == NotDue && res.Err == nil && res.HookErr == nil && res.HooksPending == 0:
		// Nothing happened: the common case of every timer run.
		level = slog.LevelDebug
	case res.Outcome == Interrupted, res.Outcome == BackingOff, res.Outcome == Deferred:
		level = slog.LevelWarn
	case res.Err != nil:
		level = slog.LevelError
	case res.HookErr != nil:
		level = slog.LevelWarn
	}
	// The no-op path reports thousands of lineages: build the record only
	// when it will be written.
	if !log.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("name", res.Name),
		slog.String("outcome", string(res.Outcome)),
	}
	if !res.NotAfter.IsZero() {
		attrs = append(attrs, slog.Time("not_after", res.NotAfter))
	}
	if !res.RenewAt.IsZero() {
		attrs = append(attrs, slog.Time("renew_at", res.RenewAt), slog.String("reason", res.Reason))
	}
	if res.Generation > 0 {
		attrs = append(attrs, slog.Int("generation", res.Generation))
	}
	if res.Failures > 0 {
		attrs = append(attrs, slog.Int("failures", res.Failures), slog.Time("retry_not_before", res.RetryNotBefore))
	}
	if res.HooksPending > 0 {
		attrs = append(attrs, slog.Int("hooks_pending", res.HooksPending))
	}
	if res.Attempts > 0 {
		attrs = append(attrs, slog.Int("attempts", res.Attempts))
	}
	if res.LockHolder > 0 {
		attrs = append(attrs, slog.Int("lock_holder_pid", res.LockHolder))
	}
	if res.LockNode != "" {
		attrs = append(attrs, slog.String("lock_node", res.LockNode))
	}
	if res.FleetGeneration > 0 {
		attrs = append(attrs, slog.Uint64("fleet_generation", res.FleetGeneration))
	}
	if !res.LockedSince.IsZero() {
		attrs = append(attrs, slog.Time("locked_since", res.LockedSince))
	}
	attrs = append(attrs, slog.Duration("duration", res.Duration))
	switch {
	case res.Err != nil:
		attrs = append(attrs, slog.String("error", res.Err.Error()))
		if le, ok := errors.AsType[*LocalError](res.Err); ok {
			// Whose fault: this machine's, not the CA's; and the fix.
			attrs = append(attrs, slog.String("fault", "local"))
			if le.Fix != "" {
				attrs = append(attrs, slog.String("fix", le.Fix))
			}
		} else if res.Outcome == Deferred {
			// The fleet's etcd, not the CA nor this machine.
			attrs = append(attrs, slog.String("fault", "fleet"))
		}
	case res.HookErr != nil:
		attrs = append(attrs, slog.String("hook_error", res.HookErr.Error()))
	}
	log.LogAttrs(context.Background(), level, "certificate", attrs...)
}

// Parts of the derived lock bound (LockBound).
const (
	// attemptBudget is what one issuance attempt may take: the ACME
	// issuer's validation and issuance waits (2 min each by default), DNS
	// propagation and the round trips, with room to spare.
	attemptBudget = 10 * time.Minute
	// lockMargin covers the rest of a run: recovery, fsyncs, a slow disk.
	lockMargin = 15 * time.Minute
	// hookBudget is what a hook without a Timeout method (a Go hook) is
	// assumed to take: a CommandHook's default timeout.
	hookBudget = 2 * time.Minute
)

// LockBound returns how long a run may legitimately hold c's lineage lock:
// LockStuckAfter when set (negative: no bound, 0 returned), otherwise twice
// the issuance budget (a resumed order and a new one, each with every
// retry: Retry's wait budget plus one attemptBudget of 10 minutes per
// attempt), twice the timeouts of c's hooks (replayed in recovery and run
// after the install; a hook with a Timeout() method says its own, others
// count 2 minutes, a command's default), and 15 minutes. With the default retry
// policy and one hook that is about 1 h 45 min.
func (r *Renewer) LockBound(c Certificate) time.Duration {
	switch {
	case r.LockStuckAfter < 0:
		return 0
	case r.LockStuckAfter > 0:
		return r.LockStuckAfter
	}
	retries := r.Retry.Retries
	switch {
	case retries == 0:
		retries = backoff.Default().Retries
	case retries < 0:
		retries = 0
	}
	issuance := r.Retry.Budget() + time.Duration(retries+1)*attemptBudget
	var hookTime time.Duration
	for _, h := range c.Hooks {
		d := hookBudget
		if t, ok := h.(interface{ Timeout() time.Duration }); ok && t.Timeout() > 0 {
			d = t.Timeout()
		}
		hookTime += d
	}
	return 2*issuance + 2*hookTime + lockMargin
}

// errLockStuck is matched (with errors.Is) by the Err of a LockStuck
// Result.
var errLockStuck = errors.New("lineage lock held longer than any run can take")

// locked is the Result of a run that found c's lock held (err matches
// lockfile.ErrLocked): Locked, or LockStuck when the holder has held it
// longer than LockBound.
func (r *Renewer) locked(c Certificate, err error, now time.Time) Result {
	res := Result{Outcome: Locked, Reason: err.Error()}
	var he *lockfile.HeldError
	sinceFromFile := false
	if errors.As(err, &he) {
		res.LockHolder, res.LockedSince, res.LockNode = he.PID, he.Since, he.Node
		sinceFromFile = he.SinceFromFile
	}
	bound := r.LockBound(c)
	if res.LockedSince.IsZero() || bound <= 0 {
		return res
	}
	held := now.Sub(res.LockedSince)
	if held <= bound {
		return res
	}
	holder, why := "another holder", "it is stopped, frozen or stuck in the kernel (ps -o stat= -p PID shows T or D)"
	switch {
	case res.LockNode != "":
		// A fleet lock's lease ends with its holder: this one is alive.
		holder, why = "node "+res.LockNode, "it keeps its lease alive without finishing (stuck in a hook, a CA wait or its disk)"
	case res.LockHolder > 0:
		holder = fmt.Sprintf("pid %d", res.LockHolder)
	}
	if sinceFromFile {
		// The holder's text was overwritten: the lock file's last write
		// is when the lock was held at the latest.
		holder += " (by the lock file's age: its text cannot be read)"
	}
	res.Outcome = LockStuck
	res.Err = fmt.Errorf("%s: %w: %s has held it since %s (%s, longer than the %s a run may take); %s, and nothing renews the certificate until it ends: %w",
		c.Name, errLockStuck, holder, res.LockedSince.UTC().Format(time.RFC3339), held.Round(time.Second), bound, why, err)
	res.Reason = "lock held too long"
	return res
}

// lineageDir is where the lineage named name lives.
func (r *Renewer) lineageDir(name string) string {
	return filepath.Join(r.Root, name)
}
