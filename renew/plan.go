package renew

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
)

// Plan is what a run would do first for one certificate, as Renewer.Plan
// decides it with the functions the run itself uses (a dry run cannot
// drift from a run).
type Plan struct {
	// Status is what Renewer.Status reports of the lineage here. In fleet
	// mode Due and Reason take into account what Install says: a forced
	// run that installs the fleet's generation takes it as its renewal.
	Status
	// Fleet is the fleet's record of the lineage (fleet mode; nil
	// otherwise, or when the certificate is invalid). Its Err is a record
	// a run would stop on (Failed, naming it), and Holder the node whose
	// fleet lock a run would find held (Locked) if it needed it now.
	Fleet *FleetView
	// Install is set when a run would first install the fleet's current
	// generation (step 5): it is not the one installed here, and it was
	// read and verified as a run verifies it.
	Install bool
	// NotInstalled says why a run would not install the fleet's current
	// generation although it is not the one installed here: it has expired,
	// is for other names, is outlived by the certificate installed here, or
	// fails verification (the error's text). "" otherwise.
	NotInstalled string
	// Adopt is set when a run would publish the generation installed here
	// as the fleet's next, without an order (step 7's adoption).
	Adopt bool
}

// Plan reports, for each certificate, what a run now would do first,
// without taking locks, writing, or contacting the CA. It is Status, and in
// fleet mode the fleet's part of the run's decisions (steps 0, 5 and 7):
// one Fleet.View for every certificate, and Fleet.Current for each fleet
// generation a run would install, verified as the run verifies it. A
// fleet that cannot be consulted is Plan's error (a run now would end
// Deferred); the plans then hold what Status says. Plan is safe for
// concurrent use.
func (r *Renewer) Plan(ctx context.Context, certs ...Certificate) ([]Plan, error) {
	sts := r.Status(certs...)
	plans := make([]Plan, len(certs))
	for i := range plans {
		plans[i].Status = sts[i]
	}
	if r.Fleet == nil {
		return plans, nil
	}
	work := make([]int, len(certs))
	for i := range work {
		work[i] = i
	}
	views, err := r.viewFleet(ctx, certs, work)
	if err != nil {
		return plans, err
	}
	now := r.now()
	for i, c := range certs {
		v := views[i]
		if v == nil {
			continue
		}
		plans[i].Fleet = v
		if v.Err != nil || sts[i].Err != nil && !sts[i].Installed {
			continue
		}
		if err := r.planFleet(ctx, &plans[i], c, *v, now); err != nil {
			return plans, err
		}
	}
	return plans, nil
}

// planFleet fills p's fleet decisions for c from the fleet's record v: the
// skip, fetch and adopts of the run's fleetRun, on the lineage's state as
// a run would load it (read only).
func (r *Renewer) planFleet(ctx context.Context, p *Plan, c Certificate, v FleetView, now time.Time) error {
	dir := r.lineageDir(c.Name)
	st, err := loadState(dir)
	if err != nil && !errors.Is(err, errStateCorrupt) {
		return nil // Status reports it
	}
	if !p.Installed {
		st.Current = nil
	} else {
		// What current holds, as Status read it (the lineage exists: Open
		// creates nothing).
		store, err := atomicfs.Open(dir, r.Modes)
		if err != nil {
			return nil // Status reports it
		}
		var scratch Status
		r.statusStore(&scratch, st, store)
	}
	f := &fleetRun{fleet: r.Fleet, view: v}
	l := &lineage{r: r, c: c, dir: dir, st: st, now: now, co: f, log: slog.New(slog.DiscardHandler)}
	switch why := f.skip(l); why {
	case "":
		cur, verified, _, end := f.fetch(ctx, l)
		switch {
		case end != nil && end.outcome == Deferred:
			return end.err
		case end != nil && end.outcome == Interrupted:
			return end.err
		case end != nil:
			p.NotInstalled = end.err.Error()
		case verified != nil:
			p.Install = true
			p.Fleet.Current = cur.FleetGeneration
			if c.Force {
				// The forced renewal is the installed generation (step 6).
				p.Due, p.Reason = false, "forced: the fleet's generation is installed instead of ordering again"
			}
		}
	case skipNone:
	default:
		p.NotInstalled = why
	}
	if !p.Install {
		p.Adopt = f.adopts(l, p.Due)
	}
	return nil
}
