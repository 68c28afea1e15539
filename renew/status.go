package renew

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/hooks"
)

// Status is what is known of one lineage without changing anything: what
// is installed, when it becomes due and why, and how earlier runs went.
type Status struct {
	Name    string
	Domains []string
	// Installed is false when no usable certificate is installed.
	Installed  bool
	Generation int
	Serial     string
	NotBefore  time.Time
	NotAfter   time.Time
	// FleetGeneration is the fleet's number of the installed generation as
	// this machine recorded it when it published or installed it (fleet
	// mode; 0 otherwise or when unknown).
	FleetGeneration uint64
	// Due, RenewAt and Reason are the decision a run would make now.
	Due     bool
	RenewAt time.Time
	Reason  string
	// Alert is the alert level of the installed certificate.
	Alert expiry.Level
	// From earlier runs.
	LastOutcome    Outcome
	LastAttempt    time.Time
	LastSuccess    time.Time
	LastError      string
	Failures       int
	RetryNotBefore time.Time
	// LastErrorLocal is set when LastError was caused on this machine
	// (ErrLocal), not by the CA; it is not counted in Failures.
	LastErrorLocal bool
	// LastErrorPermanent is set when retrying LastError cannot help (the
	// CA refused, or a local problem): a readiness check can fail on it
	// after a restart as it does on the Result that reported it.
	LastErrorPermanent bool
	// ConfigChanged is set when the failures behind RetryNotBefore happened
	// under another configuration (see Certificate.Fingerprint): the next
	// run does not back off.
	ConfigChanged bool
	// HooksPending lists the deploy hooks still to run.
	HooksPending []hooks.Entry
	// OrderInFlight is the URL of an order a killed run journaled (and
	// may have finalized) and the next run will finish and install, or "".
	OrderInFlight string
	// Err reports a lineage whose status could not be read in full (for
	// example a corrupt state.json), or whose stable links are not what
	// servers should read (a foreign file in place of one, see
	// atomicfs.Store.CheckStableLinks); the other fields hold what could.
	Err error
}

// Status reports on each certificate without taking locks, writing or
// contacting the CA: it is what a dry run and a status table show. It reads
// state.json and, when that does not describe what is installed, parses the
// installed certificate.
func (r *Renewer) Status(certs ...Certificate) []Status {
	out := make([]Status, len(certs))
	now := r.now()
	for i, c := range certs {
		out[i] = r.status(now, c)
	}
	return out
}

func (r *Renewer) status(now time.Time, c Certificate) Status {
	s := Status{Name: c.Name, Domains: c.Domains}
	if err := r.check(false); err != nil {
		s.Err = err
		return s
	}
	if err := c.validate(); err != nil {
		s.Err = err
		return s
	}
	dir := r.lineageDir(c.Name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		s.Due, s.RenewAt, s.Reason = true, now, "no certificate installed"
		return s
	}
	st, err := loadState(dir)
	if err != nil {
		s.Err = err
	}
	store, err := atomicfs.Open(dir, r.Modes)
	if err != nil {
		// A lineage this user may not renew (another owner, say) can still
		// be described: reading is safe, and state.json says what was
		// installed (unverified). The error says what to fix.
		s.Err = errors.Join(s.Err, localDirError("lineage directory", dir, err))
	} else {
		r.statusStore(&s, st, store)
	}
	s.LastOutcome, s.LastAttempt, s.LastSuccess = st.LastOutcome, st.LastAttempt, st.LastSuccess
	s.LastError, s.Failures, s.RetryNotBefore = st.LastError, st.Failures, st.RetryNotBefore
	s.LastErrorLocal = st.LastErrorLocal
	s.LastErrorPermanent = st.LastErrorPermanent
	s.ConfigChanged = st.FailedConfig != "" && st.FailedConfig != c.configHash()
	s.HooksPending = st.Hooks.Pending()
	if st.Current == nil {
		s.Due, s.RenewAt, s.Reason = true, now, "no usable certificate installed"
		return s
	}
	g := st.Current
	s.Installed, s.Generation, s.Serial, s.NotBefore, s.NotAfter = true, g.Seq, g.Serial, g.NotBefore, g.NotAfter
	s.FleetGeneration = g.FleetGen
	s.Alert = expiry.AlertLevel(now, expiry.Validity{NotBefore: g.NotBefore, NotAfter: g.NotAfter})
	if !sameRequest(c, g) {
		s.Due, s.RenewAt, s.Reason = true, now, "configured names or key type changed"
		return s
	}
	d := decide(now, c, st)
	s.Due, s.RenewAt, s.Reason = d.Due, d.RenewAt, d.Reason
	if c.Force {
		s.Due, s.Reason = true, "forced"
	}
	return s
}

// statusStore brings st.Current in line with what the store's current
// generation holds, and notes an order in flight.
func (r *Renewer) statusStore(s *Status, st *state, store *atomicfs.Store) {
	cur, err := store.Current()
	switch {
	case err != nil:
		if !errors.Is(err, fs.ErrNotExist) {
			s.Err = errors.Join(s.Err, err)
		}
		st.Current = nil
	case st.Current == nil || st.Current.Seq != cur.Seq:
		st.Current = nil
		if f, err := store.Read(cur); err == nil {
			if chain, err := expiry.ParseChain(cur.Dir, f.Cert); err == nil {
				leaf := chain[0]
				st.Current = &genInfo{Seq: cur.Seq, Serial: serialHex(leaf.SerialNumber), Domains: leafNames(leaf),
					KeyType: keyTypeOf(leaf.PublicKey), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
			} else {
				s.Err = errors.Join(s.Err, err)
			}
		} else {
			s.Err = errors.Join(s.Err, fmt.Errorf("read generation %d: %w", cur.Seq, err))
		}
	}
	if err := store.CheckStableLinks(); err != nil {
		// What servers read is not what is installed.
		s.Err = errors.Join(s.Err, err)
	}
	if data, err := store.PendingKey(); err == nil {
		if o, err := decodePending(data); err == nil && o.rec.OrderURL != st.LastOrder {
			s.OrderInFlight = o.rec.OrderURL
		}
	}
}
