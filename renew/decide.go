package renew

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/renewkit/renewkit/expiry"
)

// sameRequest reports whether the installed generation was obtained for
// what c asks for now (a change of names or key type makes it due).
func sameRequest(c Certificate, g *genInfo) bool {
	if g.KeyType != "" && g.KeyType != c.KeyType.orDefault() {
		return false
	}
	return slices.Equal(normDomains(c.Domains), normDomains(g.Domains))
}

// decide applies c's policy and the persisted ARI window to the installed
// generation.
func decide(now time.Time, c Certificate, st *state) expiry.Decision {
	p := c.Policy
	if p == nil {
		p = expiry.DefaultPolicy()
	}
	v := expiry.Validity{NotBefore: st.Current.NotBefore, NotAfter: st.Current.NotAfter}
	var w *expiry.Window
	if a := st.ARI; a != nil && a.Serial == st.Current.Serial && !a.End.IsZero() {
		w = &expiry.Window{Start: a.Start, End: a.End, ExplanationURL: a.ExplanationURL}
	}
	var picked time.Time
	if w != nil {
		picked = st.ARI.Picked
	}
	return expiry.DecideAt(now, v, p, w, picked)
}

// decide is step 6: policy, ARI and the state of what is installed.
func (l *lineage) decide(ctx context.Context) expiry.Decision {
	if l.st.Current == nil {
		return expiry.Decision{Due: true, RenewAt: l.now, Reason: "no usable certificate installed"}
	}
	if !sameRequest(l.c, l.st.Current) {
		return expiry.Decision{Due: true, RenewAt: l.now, Reason: "configured names or key type changed"}
	}
	// A certificate someone damaged after we recorded it (truncated
	// cert.pem) is due even though the state says otherwise.
	if _, err := l.currentLeaf(); err != nil {
		l.log.Warn("installed certificate unreadable; the lineage is due", "error", err)
		return expiry.Decision{Due: true, RenewAt: l.now, Reason: "installed certificate unreadable"}
	}
	l.refreshARI(ctx)
	d := decide(l.now, l.c, l.st)
	if l.c.Force && !l.co.forceSatisfied() {
		d.Due = true
		d.Reason = "forced"
	}
	return d
}

// refreshARI fetches the CA's renewal window when it is time to (step 6).
// It first adopts the coordinator's shared window when that is fresh
// (fleet: another node fetched it for this interval), and shares a window
// it fetched.
func (l *lineage) refreshARI(ctx context.Context) {
	ri, ok := l.r.Issuer.(RenewalInfoer)
	if !ok {
		return
	}
	a := l.st.ARI
	if a != nil && a.Serial == l.st.Current.Serial && l.now.Before(a.NextFetch) {
		return
	}
	if l.adoptARI(a) {
		return
	}
	leaf, err := l.currentLeaf()
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := ri.RenewalInfo(cctx, leaf)
	next := &ariState{Serial: l.st.Current.Serial}
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		next.NextFetch = l.now.Add(24 * time.Hour)
	case err != nil:
		l.log.Warn("could not fetch the ARI renewal window; using the policy", "error", err)
		next.NextFetch = l.now.Add(time.Hour)
		if a != nil && a.Serial == next.Serial {
			// Keep the window we had.
			*next = *a
			next.NextFetch = l.now.Add(time.Hour)
		}
	default:
		next.Start, next.End, next.ExplanationURL = w.Start, w.End, w.ExplanationURL
		next.NextFetch = l.now.Add(l.r.ariInterval())
		l.pickARI(next, a)
		l.co.shareARI(ctx, l, next)
	}
	l.st.ARI = next
}

// pickARI sets next.Picked: a's instant when next is a's window, else a new
// one in next's window.
func (l *lineage) pickARI(next, a *ariState) {
	if a != nil && a.Serial == next.Serial && a.Start.Equal(next.Start) && a.End.Equal(next.End) {
		next.Picked = a.Picked
	} else if next.End.After(next.Start) {
		w := expiry.Window{Start: next.Start, End: next.End, ExplanationURL: next.ExplanationURL}
		l.r.withRand(func(r *rand.Rand) { next.Picked = w.Pick(r) })
		// A window that reaches into the last tenth of the lifetime
		// (some CAs clamp short certificates' windows to the whole
		// lifetime) could pick an instant too close to expiry to renew,
		// retry and reload in time: such a pick is moved back to where
		// the last tenth begins. Real windows end long before.
		g := l.st.Current
		if limit := g.NotAfter.Add(-g.NotAfter.Sub(g.NotBefore) / 10); next.Picked.After(limit) {
			next.Picked = limit
		}
	}
}

// adoptARI takes the coordinator's shared renewal window into the state
// instead of fetching one when it is fresh (fleet mode): per interval one
// node asks the CA. It reports whether it did; a is the window the state
// had.
func (l *lineage) adoptARI(a *ariState) bool {
	w := l.co.sharedARI()
	if !sharedARIFresh(w, l.st.Current.Serial, l.now, l.r.ariInterval()) {
		return false
	}
	next := &ariState{Serial: w.Serial, Start: w.Start, End: w.End, ExplanationURL: w.ExplanationURL, NextFetch: w.NextFetch}
	l.pickARI(next, a)
	l.st.ARI = next
	l.log.Debug("using the fleet's ARI renewal window", "start", next.Start, "end", next.End, "next_fetch", next.NextFetch)
	return true
}
