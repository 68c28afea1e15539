package renew

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/expiry"
)

// Defence in depth on a fleet generation. The fleet's records are
// authenticated by the Fleet (package fleet: a MAC under the seal key), so
// whoever can write to etcd without the seal key cannot make a node install
// anything. What a node also checks before it installs the fleet's
// generation (fleetSync), whoever wrote it:
//
//   - No rollback. The node remembers, in the lineage's state, the highest
//     fleet generation number it accepted (installed or published):
//     a generation with a lower number, or with the same number and another
//     certificate, is refused, and so is one whose certificate is older
//     (NotBefore) than the installed one from the fleet. A node whose own
//     certificate is at least as new as the fleet's publishes it instead,
//     numbered above what it accepted (localNewer): this is how a fleet
//     recovers from a genuine restore of etcd from a backup, without anyone
//     editing a record. A node left with an older certificate than a
//     restored fleet's and a higher memory refuses until the fleet's number
//     passes its memory: run it with Certificate.Force once (it orders and
//     publishes above both), or, after checking the fleet's certificate,
//     remove "fleet_accepted" and "current"."fleet_generation" from the
//     lineage's state.json.
//   - The issuer. With Renewer.Roots set (a private CA), the chain must
//     verify to them, as an issued certificate's. Without it, when the
//     installed certificate verifies to the system's roots (a public CA),
//     the fleet's must too. For a CA whose roots are in neither (a staging
//     or test CA, Pebble), what is checked is the chain signed link by link,
//     the names, the key, the validity and the lifetime below.
//   - The lifetime, without Roots: longer than maxFleetLifetime (398 days,
//     the longest a publicly trusted TLS certificate may be valid), or than
//     twice the installed certificate's (and more than a week), is refused.
//     With Roots set the chain's verification to them is the check: a
//     private CA may issue longer certificates, and change lifetimes.

// maxFleetLifetime is the longest lifetime a fleet certificate may have
// without Renewer.Roots: 398 days, the CA/Browser Forum's limit for
// publicly trusted TLS certificates.
const maxFleetLifetime = 398 * 24 * time.Hour

// fleetAccepted is the highest fleet generation this node accepted for
// the lineage (state.json's fleet_accepted, or the installed generation's
// number for a state written before it existed).
func (l *lineage) fleetAccepted() uint64 {
	n := l.st.FleetAccepted
	if g := l.st.Current; g != nil && g.FleetGen > n {
		n = g.FleetGen
	}
	return n
}

// acceptFleet raises the remembered generation to n (saved with the state).
func (l *lineage) acceptFleet(n uint64) {
	if n > l.st.FleetAccepted {
		l.st.FleetAccepted = n
	}
}

// checkFleetNumber refuses a fleet generation (number n, serial) that is
// older than what this node accepted. It is checked before the bundle is
// read.
func (l *lineage) checkFleetNumber(n uint64, serial string) error {
	acc := l.fleetAccepted()
	g := l.st.Current
	switch {
	case n < acc:
		return fmt.Errorf("%w: the fleet's generation %d (serial %s) is older than generation %d this node accepted: a replayed or restored record; not installed (see renew's fleet trust documentation for a genuine restore)", ErrFleetRecord, n, serial, acc)
	case n == acc && g != nil && g.FleetGen == acc && g.Serial != serial:
		return fmt.Errorf("%w: the fleet's generation %d has serial %s, but this node installed generation %d with serial %s: a replayed or restored record; not installed", ErrFleetRecord, n, serial, acc, g.Serial)
	}
	return nil
}

// checkFleetCert is the rest of the checks above, on the verified
// certificate of the fleet's generation.
func (l *lineage) checkFleetCert(v *verified) error {
	leaf := v.leaf
	g := l.st.Current
	if g != nil && g.FleetGen > 0 && leaf.NotBefore.Before(g.NotBefore) {
		return fmt.Errorf("%w: the fleet's certificate was issued %s, before the installed one from the fleet (%s): an older certificate; not installed",
			ErrFleetRecord, leaf.NotBefore.UTC().Format(time.RFC3339), g.NotBefore.UTC().Format(time.RFC3339))
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if l.r.Roots == nil && life > maxFleetLifetime {
		return fmt.Errorf("%w: the fleet's certificate is valid for %v, more than the %d days a CA issues; not installed", ErrFleetRecord, life.Round(time.Hour), int(maxFleetLifetime/(24*time.Hour)))
	}
	if g != nil && l.r.Roots == nil {
		if own := g.NotAfter.Sub(g.NotBefore); own > 0 && life > 2*own && life > 7*24*time.Hour {
			return fmt.Errorf("%w: the fleet's certificate is valid for %v, more than twice the installed one's %v; not installed", ErrFleetRecord, life.Round(time.Hour), own.Round(time.Hour))
		}
	}
	if l.r.Roots != nil || g == nil || l.store == nil {
		return nil // verify checked the roots; or nothing to compare with
	}
	sys, err := x509.SystemCertPool()
	if err != nil || verifiesTo(leaf, v.chain, sys, l.r.now()) {
		return nil
	}
	// Not to a public root: refused if the installed one is.
	cur, err := l.store.Current()
	if err != nil {
		return nil
	}
	f, err := l.store.Read(cur)
	if err != nil {
		return nil
	}
	chain, err := expiry.ParseChain(cur.Dir, append(append([]byte{}, f.Cert...), f.Chain...))
	if err != nil || len(chain) == 0 {
		return nil
	}
	if verifiesTo(chain[0], chain[1:], sys, l.r.now()) {
		return fmt.Errorf("%w: the fleet's certificate (issued by %q) does not verify to the system's roots, which the installed one does; not installed", ErrFleetRecord, leaf.Issuer.String())
	}
	return nil
}

// verifiesTo reports whether leaf, with chain as intermediates, verifies
// to roots at now (for any usage: the key usage was checked by verify).
func verifiesTo(leaf *x509.Certificate, chain []*x509.Certificate, roots *x509.CertPool, now time.Time) bool {
	inter := x509.NewCertPool()
	for _, c := range chain {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}
