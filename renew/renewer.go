package renew

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/lockfile"
)

// Renewer runs certificates through the renewal state machine described in
// the package documentation.
//
// Its exported fields are configuration: set them before the first call and
// do not change them afterwards. Every zero value is a documented default.
// A Renewer is safe for concurrent use; concurrent Runs over the same
// lineage exclude each other through the Locker (one gets Locked).
type Renewer struct {
	// Root is the storage root; each lineage lives in Root/NAME. Required.
	// It must be on a local file system (see the package documentation).
	Root string
	// Issuer obtains certificates. Required to renew; Status does not use it.
	// When it also implements Resumer, orders journaled by a killed run are
	// finished instead of ordered again; when it implements RenewalInfoer,
	// ARI windows are fetched and new orders name the certificate they
	// replace.
	Issuer Issuer
	// Locker excludes concurrent renewals of one lineage. Nil means
	// lockfile.NewDirLocker(Root): an flock(2) on Root/NAME/.lock.
	Locker lockfile.Locker
	// Retry is the in-run retry policy for issuance; the zero value is
	// backoff.Default() (3 retries, 10 s, 30 s, 90 s, ±20 % jitter).
	Retry backoff.Policy
	// Logger receives one summary record per certificate and details at
	// Debug. Nil discards. Keys never appear in records.
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
	// HookGrace is how long deploy hooks may go on running after ctx ends:
	// a hook running when a stop is asked for finishes (or is killed when
	// HookGrace has passed), and the other hooks of the same generation
	// still start within it, so that a certificate already made current is
	// reloaded before the program exits. Zero kills a running hook as soon
	// as ctx ends. Either way a hook that did not finish stays pending and
	// the next run replays it. A long-running program sets it a little
	// under its shutdown grace period.
	HookGrace time.Duration
	// StoreOptions configure file modes and groups of the lineage stores.
	StoreOptions []atomicfs.Option
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
	// Rand is the source of randomness for ARI picks and jitter; nil means a
	// randomly seeded source. For tests.
	Rand rand.Source

	randMu sync.Mutex
	rnd    *rand.Rand

	euidOnce sync.Once
	euidVal  int

	// retryOpts are extra options for backoff.Do (tests inject sleeps).
	retryOpts []backoff.Option
}

// ErrConfig reports a Renewer that is not configured well enough to run.
var ErrConfig = errors.New("renew: bad configuration")

func (r *Renewer) check(needIssuer bool) error {
	if r.Root == "" {
		return fmt.Errorf("%w: Root is empty", ErrConfig)
	}
	if needIssuer && r.Issuer == nil {
		return fmt.Errorf("%w: Issuer is nil", ErrConfig)
	}
	if r.Keep < 0 {
		return fmt.Errorf("%w: Keep is negative", ErrConfig)
	}
	return nil
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

func (r *Renewer) locker() lockfile.Locker {
	if r.Locker != nil {
		return r.Locker
	}
	return lockfile.NewDirLocker(r.Root)
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
		src := r.Rand
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
func (r *Renewer) Run(ctx context.Context, certs ...Certificate) []Result {
	results := make([]Result, len(certs))
	if err := r.check(true); err != nil {
		for i, c := range certs {
			results[i] = Result{Name: c.Name, Outcome: Failed, Err: err}
		}
		return results
	}
	work := make([]int, 0, len(certs))
	seen := make(map[string]bool, len(certs))
	for i, c := range certs {
		if seen[c.Name] {
			results[i] = Result{Name: c.Name, Outcome: Failed, Err: fmt.Errorf("%w: lineage %q listed twice", ErrInvalidCertificate, c.Name)}
			continue
		}
		seen[c.Name] = true
		work = append(work, i)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range r.concurrency(len(work)) {
		wg.Go(func() {
			for i := range next {
				results[i] = r.runOne(ctx, certs[i])
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

// runOne runs one certificate and reports its Result to the log and the
// Observer.
func (r *Renewer) runOne(ctx context.Context, c Certificate) Result {
	start := time.Now()
	res := r.run(ctx, c)
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
	case res.Outcome == Interrupted:
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
	attrs = append(attrs, slog.Duration("duration", res.Duration))
	switch {
	case res.Err != nil:
		attrs = append(attrs, slog.String("error", res.Err.Error()))
	case res.HookErr != nil:
		attrs = append(attrs, slog.String("hook_error", res.HookErr.Error()))
	}
	log.LogAttrs(context.Background(), level, "certificate", attrs...)
}

// lineageDir is where the lineage named name lives.
func (r *Renewer) lineageDir(name string) string {
	return filepath.Join(r.Root, name)
}

// leftover reports whether name, an entry of a lineage directory, is
// something a killed run may have left: a hidden entry other than the lock
// file (temporary files and links), or a pending key.
func leftover(name string) bool {
	return name == pendingKeyFile || (len(name) > 0 && name[0] == '.' && name != ".lock")
}

// pendingKeyFile is atomicfs's name for the key of a journaled order.
const pendingKeyFile = "pending.key"
