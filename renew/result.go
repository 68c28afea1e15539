package renew

import (
	"fmt"
	"time"
)

// Outcome is how one certificate's run ended.
type Outcome string

// The outcomes of a run. Every certificate passed to Run ends with exactly one.
const (
	// NotDue: the installed certificate is valid and not yet due; nothing changed.
	NotDue Outcome = "not_due"
	// Renewed: a new certificate was obtained, installed and made current.
	Renewed Outcome = "renewed"
	// Recovered: the run finished what a killed run left (rolled a complete
	// generation forward or installed the certificate of a journaled order),
	// or installed the fleet's current generation (fleet mode), and the
	// result is not due.
	Recovered Outcome = "recovered"
	// Locked: another process or goroutine holds the lineage; it is doing the
	// work, so this is not a failure.
	Locked Outcome = "locked"
	// LockStuck: another holder has held the lineage's lock for longer
	// than any run can take (Renewer.LockStuckAfter): it is stopped,
	// frozen or blocked in the kernel, and nothing renews the lineage while
	// it holds the lock. A failure: Err says who
	// and since when.
	LockStuck Outcome = "lock_stuck"
	// BackingOff: earlier runs failed and the persisted not-before time has
	// not passed; the CA was not contacted. Err says
	// until when and the last error; setting Certificate.Force retries now,
	// and so does changing the configuration that failed (see
	// Certificate.Fingerprint).
	BackingOff Outcome = "backing_off"
	// Failed: the run could not do what was needed; Err says why. The
	// installed certificate, if any, is untouched.
	Failed Outcome = "failed"
	// Interrupted: the context ended before the run finished; whatever was
	// begun is completed or rolled back by the next run.
	Interrupted Outcome = "interrupted"
	// Deferred: fleet mode only (Renewer.Fleet). The fleet could not be
	// consulted (etcd unreachable, no quorum, a timeout), so nothing was
	// ordered, installed or changed locally, and the installed
	// certificate is still served. A failure: Err says what failed; the
	// next run tries again. It is not counted against the CA's backoff.
	Deferred Outcome = "deferred"
	// Adopted: Renewer.Adopt made a certificate another client issued the
	// lineage's current generation (or found it so already); nothing was
	// ordered. Run never returns it.
	Adopted Outcome = "adopted"
)

// OK reports whether o leaves the certificate in a good state: renewed,
// recovered, adopted, not due, or being handled by another holder of the
// lock.
func (o Outcome) OK() bool {
	switch o {
	case NotDue, Renewed, Recovered, Locked, Adopted:
		return true
	}
	return false
}

// Result is the end of one certificate's run.
type Result struct {
	// Name is the lineage name.
	Name string
	// Domains are the names the certificate was configured with.
	Domains []string
	// Outcome is how the run ended.
	Outcome Outcome
	// Err is why the run failed, was interrupted, is backing off or found
	// its lock held too long (LockStuck). Nil for NotDue, Locked, Renewed
	// and Recovered: a deploy hook that failed after an install is in
	// HookErr, not here.
	// errors.Is(Err, ErrLocal) tells a failure caused on this machine
	// (errors.As a *LocalError gives its fix); such a failure is not
	// counted in Failures and sets no RetryNotBefore, since retrying
	// cannot hammer the CA: the preflight checks fail before any order.
	Err error
	// HookErr is the failure of deploy hooks that stay pending after this run.
	// The certificate is installed; later runs retry the hooks.
	HookErr error
	// Generation is the generation current points to at the end (0 if none).
	Generation int
	// Serial is the current certificate's serial number in hex.
	Serial string
	// NotBefore and NotAfter are the current certificate's validity (zero
	// if none).
	NotBefore time.Time
	NotAfter  time.Time
	// RenewAt is when the current certificate becomes due, and Reason says
	// why then.
	RenewAt time.Time
	Reason  string
	// NextCheck is when running again can next make a difference: RenewAt,
	// the end of a backoff, or soon after a failure.
	NextCheck time.Time
	// Failures counts consecutive failed runs, and RetryNotBefore is the
	// persisted gate they set.
	Failures       int
	RetryNotBefore time.Time
	// LastSuccess is when a certificate was last installed.
	LastSuccess time.Time
	// HooksPending counts deploy hooks still to run.
	HooksPending int
	// Attempts counts issuance attempts made by this run; Issued is 1 when
	// this run installed a certificate the CA issued to it (ordered or
	// resumed).
	Attempts int
	Issued   int
	// Duration is how long the run took.
	Duration time.Duration
	// LockHolder and LockedSince describe the other holder of the
	// lineage's lock when the outcome is Locked or LockStuck: its process ID
	// and when it took the lock, as its lock file says (advisory: zero when
	// unknown).
	LockHolder  int
	LockedSince time.Time
	// LockNode is the node holding the lineage's fleet lock when the
	// outcome is Locked or LockStuck because of it (fleet mode).
	LockNode string
	// FleetGeneration is the fleet's number of the generation installed
	// here (fleet mode; 0 when unknown or outside fleet mode).
	FleetGeneration uint64
}

// String summarises r on one line, for logs and the CLI.
func (r Result) String() string {
	s := fmt.Sprintf("%s: %s", r.Name, r.Outcome)
	if !r.NotAfter.IsZero() {
		s += fmt.Sprintf(" (expires %s", r.NotAfter.UTC().Format(time.RFC3339))
		if !r.RenewAt.IsZero() {
			s += fmt.Sprintf(", renew at %s", r.RenewAt.UTC().Format(time.RFC3339))
		}
		s += ")"
	}
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// Observer receives each certificate's Result from a Renewer, for metrics.
// Finished is called from the goroutines that run certificates, possibly
// concurrently, and must not block. (Attempts are in Result.Attempts.)
type Observer interface {
	// Finished is called once per certificate when its run ends.
	Finished(Result)
}
