package fleet

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/renewkit/renewkit/renew"
)

// The adapter: a Client is the fleet of a renew.Renewer (Renewer.Fleet).
// Records map to renew's as follows (a missing record leaves its fields
// zero):
//
//	meta     FleetView.Current: Number, Serial, Domains (Names), NotBefore, NotAfter, Publisher (IssuedBy), Published
//	journal  FleetView.Order: OrderURL, Domains (Names), Created, Node, Key (FleetLock.Record only); FleetLock.Journal
//	backoff  FleetView.Backoff: Failures, RetryNotBefore (NotBefore), LastError, FailedConfig; FleetLock.Fail
//	ari      FleetView.ARI: Serial, Start (WindowStart), End (WindowEnd), ExplanationURL (Explanation), NextFetch (NextCheck); FleetLock.PutARI
//	lock     FleetView.Holder, HolderSince
//	bundle   FleetBundle (Fleet.Current, FleetLock.Publish)

var _ renew.Fleet = (*Client)(nil)

// lineageOf is the fleet lineage of c: its name, and its names in renew's
// canonical form, so that the records' names compare as renew compares them.
func lineageOf(c renew.Certificate) Lineage {
	return Lineage{Name: c.Name, Domains: canonical(c.Domains)}
}

// canonical returns names in renew's canonical form (renew.CanonicalName).
func canonical(names []string) []string {
	out := make([]string, len(names))
	for i, d := range names {
		out[i] = renew.CanonicalName(d)
	}
	return out
}

// View implements [renew.Fleet] with [Client.ReadStates]: one linearizable
// range read of every lineage's small records, whatever the number of
// certificates. A bad record of a lineage is its entry's Err (a
// [*RecordError] naming the etcd key); etcd failures are View's error,
// matching [ErrUnavailable].
func (c *Client) View(ctx context.Context, certs []renew.Certificate) ([]renew.FleetView, error) {
	if len(certs) == 0 {
		return nil, nil
	}
	lineages := make([]Lineage, len(certs))
	for i, cert := range certs {
		lineages[i] = lineageOf(cert)
	}
	snap, err := c.ReadStates(ctx, lineages...)
	if err != nil {
		return nil, err
	}
	out := make([]renew.FleetView, len(certs))
	for i, l := range lineages {
		out[i] = fleetView(snap.States[l.Name], false)
	}
	return out, nil
}

// fleetView maps st to a renew.FleetView, with the journaled order's key
// if withOrderKey.
func fleetView(st *State, withOrderKey bool) renew.FleetView {
	v := renew.FleetView{Name: st.Lineage, Holder: st.Holder, HolderSince: st.HolderSince}
	if st.Err != nil {
		v.Err = unusable{st.Err}
	}
	if m := st.Meta; m != nil {
		v.Current = generationOf(m)
	}
	if j := st.Journal; j != nil {
		v.Order = &renew.FleetOrder{OrderURL: j.OrderURL, Domains: j.Names, Created: j.Created, Node: j.Node}
		if withOrderKey {
			v.Order.Key = j.KeyPEM
		}
	}
	if a := st.ARI; a != nil {
		v.ARI = renew.FleetARI{Serial: a.Serial, Start: a.WindowStart, End: a.WindowEnd, ExplanationURL: a.Explanation, NextFetch: a.NextCheck}
	}
	if b := st.Backoff; b != nil {
		v.Backoff = renew.FleetBackoff{Failures: b.Failures, RetryNotBefore: b.NotBefore, LastError: b.LastError, FailedConfig: b.FailedConfig}
	}
	return v
}

// generationOf maps a meta record to renew's description of a generation.
func generationOf(m *Meta) renew.FleetGeneration {
	return renew.FleetGeneration{
		Number: uint64(m.Number), // checked >= 1 when decoded
		Serial: m.Serial, Domains: m.Names, NotBefore: m.NotBefore, NotAfter: m.NotAfter,
		Publisher: m.IssuedBy, Published: m.Published,
	}
}

// unusable is a record error as renew sees it: it matches
// renew.ErrFleetRecord as well as ErrRecord, and reads as the
// [*RecordError] it wraps (which names the etcd key).
type unusable struct{ err error }

func (e unusable) Error() string        { return e.err.Error() }
func (e unusable) Unwrap() error        { return e.err }
func (e unusable) Is(target error) bool { return target == renew.ErrFleetRecord }

// Current implements [renew.Fleet] with [Client.ReadGeneration]: the
// fleet's current generation of c's lineage with its key unsealed; Number
// 0 when none was published. A generation for other names than c's is
// returned with its names (Domains): renew replaces it. A bundle that
// cannot be used (not decodable, sealed with a key this node lacks, too
// large, its certificate's serial or names not those its record says) is
// an error matching renew.ErrFleetRecord and [ErrRecord], a [*RecordError]
// naming the etcd key: the generation is refused, not deferred. etcd
// failures match [ErrUnavailable].
func (c *Client) Current(ctx context.Context, cert renew.Certificate) (renew.FleetBundle, error) {
	g, err := c.ReadGeneration(ctx, lineageOf(cert))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return renew.FleetBundle{}, nil
	case errors.Is(err, ErrRecord):
		return renew.FleetBundle{}, unusable{err}
	case err != nil:
		return renew.FleetBundle{}, err
	}
	if err := checkBundleLeaf(c.keys.bundle(cert.Name), g); err != nil {
		return renew.FleetBundle{}, unusable{err}
	}
	return renew.FleetBundle{FleetGeneration: generationOf(&g.Meta), Cert: g.CertPEM, Chain: g.ChainPEM, Key: g.KeyPEM}, nil
}

// checkBundleLeaf refuses a bundle (stored under key) whose certificate is
// not the one its record describes: another serial, or other names.
func checkBundleLeaf(key string, g *Generation) error {
	leaf, err := parseLeaf(g.CertPEM)
	if err != nil {
		return recordErr(key, "%v", err)
	}
	if serial := fmt.Sprintf("%x", leaf.SerialNumber); !strings.EqualFold(serial, g.Serial) {
		return recordErr(key, "the certificate's serial is %s, the record says %s", serial, g.Serial)
	}
	if names := sortedNames(leafNames(leaf)); !slices.Equal(names, sortedNames(g.Names)) {
		return recordErr(key, "the certificate is for names %v, the record says %v", names, sortedNames(g.Names))
	}
	return nil
}

// leafNames returns the names leaf covers (DNS names in renew's canonical
// form, then IP addresses), as Publish records them.
func leafNames(leaf *x509.Certificate) []string {
	names := canonical(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// Lock implements [renew.Fleet] with [Client.TryLockFenced]. A lock held
// elsewhere is a *lockfile.HeldError (Path: the etcd lock key; Node;
// Since), which matches [lockfile.ErrLocked]. Every write through the returned lock is fenced: once
// the lock is lost the write fails with an error matching [ErrFenced] and
// nothing is written.
func (c *Client) Lock(ctx context.Context, cert renew.Certificate) (renew.FleetLock, error) {
	lin := lineageOf(cert)
	if err := checkLineageArg(lin); err != nil {
		return nil, err
	}
	l, err := c.TryLockFenced(ctx, lin.Name)
	if err != nil {
		return nil, err
	}
	return &fleetLock{c: c, l: l, lin: lin}, nil
}

// fleetLock is a held fleet lock on one lineage, as a renew.FleetLock. It is
// safe for concurrent use (a Lock is).
type fleetLock struct {
	c   *Client
	l   *Lock
	lin Lineage
}

// Record re-reads the lineage's records in one linearizable read of its
// state keys, with the journaled order's key unsealed. As in View, a bad
// record is the record's Err (a [*RecordError] naming the etcd key), and
// the run stops on it before anything is ordered.
func (f *fleetLock) Record(ctx context.Context) (renew.FleetView, error) {
	snap, err := f.c.readStates(ctx, f.c.keys.lineagePrefix(f.lin.Name), []Lineage{f.lin})
	if err != nil {
		return renew.FleetView{}, err
	}
	return fleetView(snap.States[f.lin.Name], true), nil
}

// Journal implements [renew.FleetLock] with [Client.PutJournal]; o.Node is
// this node.
func (f *fleetLock) Journal(ctx context.Context, o renew.FleetOrder) error {
	return f.c.PutJournal(ctx, f.l, f.lin, Journal{OrderURL: o.OrderURL, Names: canonical(o.Domains), Created: o.Created, KeyPEM: o.Key})
}

// DropOrder implements [renew.FleetLock] with [Client.ClearJournal].
func (f *fleetLock) DropOrder(ctx context.Context) error {
	return f.c.ClearJournal(ctx, f.l)
}

// Publish implements [renew.FleetLock] with [Client.PublishGeneration].
// What the meta record says is checked against the leaf (the first
// certificate of g.Cert) before anything is written: its names (DNS names
// and IP addresses) must be exactly the lineage's, and g.Serial (hex),
// g.NotBefore and g.NotAfter the leaf's (zero values are taken from it), so
// that no node compares its serial against a record that does not describe
// the certificate it would install. g.Publisher and g.Published default to
// this node and now.
func (f *fleetLock) Publish(ctx context.Context, g renew.FleetBundle) error {
	key := f.c.keys.bundle(f.lin.Name)
	if g.Number > math.MaxInt64 {
		return fmt.Errorf("fleet: publish %s: generation %d out of range", key, g.Number)
	}
	leaf, err := parseLeaf(g.Cert)
	if err != nil {
		return fmt.Errorf("fleet: publish %s: %w", key, err)
	}
	serial := fmt.Sprintf("%x", leaf.SerialNumber)
	if g.Serial == "" {
		g.Serial = serial
	}
	if g.NotBefore.IsZero() {
		g.NotBefore = leaf.NotBefore
	}
	if g.NotAfter.IsZero() {
		g.NotAfter = leaf.NotAfter
	}
	if !strings.EqualFold(g.Serial, serial) || !g.NotBefore.Equal(leaf.NotBefore) || !g.NotAfter.Equal(leaf.NotAfter) {
		return fmt.Errorf("fleet: publish %s: serial %s valid %v to %v, but the certificate's are %s, %v to %v; nothing written",
			key, g.Serial, g.NotBefore, g.NotAfter, serial, leaf.NotBefore, leaf.NotAfter)
	}
	names := leafNames(leaf)
	return f.c.PublishGeneration(ctx, f.l, f.lin, Generation{
		Meta: Meta{
			Number: int64(g.Number), Serial: serial, Names: names,
			NotBefore: g.NotBefore.UTC(), NotAfter: g.NotAfter.UTC(),
			IssuedBy: g.Publisher, Published: g.Published,
		},
		CertPEM: g.Cert, ChainPEM: g.Chain, KeyPEM: g.Key,
	})
}

// parseLeaf parses the first certificate of certPEM.
func parseLeaf(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return leaf, nil
}

// Fail implements [renew.FleetLock] with [Client.PutBackoff]; the failure
// is dated now and attributed to this node.
func (f *fleetLock) Fail(ctx context.Context, b renew.FleetBackoff) error {
	return f.c.PutBackoff(ctx, f.l, Backoff{
		Failures: b.Failures, LastFailure: f.c.now().UTC(), NotBefore: b.RetryNotBefore,
		LastError: b.LastError, FailedConfig: b.FailedConfig,
	})
}

// PutARI implements [renew.FleetLock] with [Client.PutARI]; the window is
// dated now (Fetched).
func (f *fleetLock) PutARI(ctx context.Context, w renew.FleetARI) error {
	return f.c.PutARI(ctx, f.l, ARI{
		Serial: w.Serial, WindowStart: w.Start.UTC(), WindowEnd: w.End.UTC(),
		NextCheck: w.NextFetch.UTC(), Explanation: w.ExplanationURL, Fetched: f.c.now().UTC(),
	})
}

// Unlock implements [renew.FleetLock] with [Lock.Unlock].
func (f *fleetLock) Unlock() error { return f.l.Unlock() }

// Watch implements [renew.Fleet]: a watch of every lineage's state keys
// from the current revision (read before Watch returns, so no change after
// the call is missed), sending the name of each lineage whose state
// changes, once per revision. What is sent: a change of the meta record
// (a publish, which writes the bundle in the same revision), the order
// journal or the backoff, by any node; and the release of a lock by
// another node (unlocked, or its lease expired: a node that found it held
// may try again). What is not: taking a lock (nothing another node could
// act on changed), the release of a lock this client held (this node's
// own run ending, which would otherwise wake its own Serve to run the
// lineage again at once, in a loop when the run fails here), and an ARI
// window (see renew.Fleet.Watch: every node reads it with its next View). The channel is closed
// when ctx ends or the watch fails (etcd unavailable, the revision
// compacted; logged); the caller then reads again and watches anew.
func (c *Client) Watch(ctx context.Context) <-chan string {
	out := make(chan string)
	var rev int64
	err := c.call(ctx, "read revision", func(ctx context.Context) error {
		resp, err := c.cli.Get(ctx, c.keys.statePrefix(), clientv3.WithCountOnly())
		if err == nil {
			rev = resp.Header.Revision
		}
		return err
	})
	if err != nil {
		c.log.Warn("fleet: watch not started", "err", err)
		close(out)
		return out
	}
	changes := c.watch(ctx, rev)
	go func() {
		defer close(out)
		var lastName string
		var lastRev int64
		for ch := range changes {
			if ch.Err != nil {
				c.log.Warn("fleet: watch ended", "err", ch.Err)
				continue // the last change: changes is closed next
			}
			if ch.Kind == KindARI || (ch.Kind == KindLock && (!ch.Deleted || c.ownLease(ch.Lease))) || (ch.Lineage == lastName && ch.Revision == lastRev) {
				continue
			}
			lastName, lastRev = ch.Lineage, ch.Revision
			select {
			case out <- ch.Lineage:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
