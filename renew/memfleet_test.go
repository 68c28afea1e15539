package renew

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/renewkit/renewkit/lockfile"
)

// memFleet is an in-memory Fleet shared by the Renewers of a test, one
// node each (memFleet.node). It honours fencing like the etcd one: every
// lock carries a token, and a write through a lock whose token is no longer
// the lineage's holder (revoked by the test, as when a lease expires) fails
// with errMemFenced and changes nothing.
type memFleet struct {
	mu      sync.Mutex
	now     func() time.Time
	recs    map[string]*memRecord
	holders map[string]memHolder // lineage → current holder
	token   int64
	watches []memWatch

	// Injected failures: the next calls of each kind fail with these
	// (nil: succeed).
	viewErr, currentErr, lockErr, recordErr, journalErr error

	// Counters of calls, under mu.
	views, currents, locks, publishes, journals, fails, watchCalls, aris int
}

// memRecord is one lineage's state in a memFleet.
type memRecord struct {
	gen     FleetBundle
	order   *FleetOrder // with its Key
	backoff FleetBackoff
	ari     FleetARI
	err     error // reported in the record's Err
}

// memWatch is one node's watch.
type memWatch struct {
	node string
	ch   chan string
}

type memHolder struct {
	node  string
	token int64
	since time.Time
}

var errMemUnavailable = errors.New("memfleet: unavailable")
var errMemFenced = errors.New("memfleet: fenced: the lock is no longer held")

func newMemFleet(now func() time.Time) *memFleet {
	return &memFleet{now: now, recs: map[string]*memRecord{}, holders: map[string]memHolder{}}
}

// node returns the Fleet of one node.
func (f *memFleet) node(name string) *memNode { return &memNode{f: f, name: name} }

func (f *memFleet) rec(name string) *memRecord {
	r := f.recs[name]
	if r == nil {
		r = &memRecord{}
		f.recs[name] = r
	}
	return r
}

// memSnapshot is everything a memFleet holds for one lineage.
type memSnapshot struct {
	FleetView   // with the order's key
	FleetBundle // the current generation with its PEM
}

// record returns a copy of what the fleet holds for name.
func (f *memFleet) record(name string) memSnapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return memSnapshot{f.snapshot(name, true), f.bundle(name)}
}

// snapshot is the FleetView of name, with the order's key when asked.
// Under mu.
func (f *memFleet) snapshot(name string, orderKey bool) FleetView {
	r := f.rec(name)
	out := FleetView{Name: name, Current: r.gen.FleetGeneration, Backoff: r.backoff, ARI: r.ari, Err: r.err}
	out.Current.Domains = slices.Clone(out.Current.Domains)
	if r.order != nil {
		o := *r.order
		o.Domains = slices.Clone(o.Domains)
		o.Key = nil
		if orderKey {
			o.Key = bytes.Clone(r.order.Key)
		}
		out.Order = &o
	}
	if h, ok := f.holders[name]; ok {
		out.Holder, out.HolderSince = h.node, h.since
	}
	return out
}

// bundle is name's current generation with its PEM. Under mu.
func (f *memFleet) bundle(name string) FleetBundle {
	g := f.rec(name).gen
	g.Domains = slices.Clone(g.Domains)
	g.Cert, g.Chain, g.Key = bytes.Clone(g.Cert), bytes.Clone(g.Chain), bytes.Clone(g.Key)
	return g
}

// revoke ends the current holder's hold on name, as when its lease
// expires: its later writes are fenced.
func (f *memFleet) revoke(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.holders, name)
}

// setErr makes name's record unusable.
func (f *memFleet) setErr(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rec(name).err = err
}

// take returns and clears an injected error. Under mu.
func take(p *error) error {
	err := *p
	*p = nil
	return err
}

// changed tells the watchers, except node's (unless node is ""), that
// name's record changed. Under mu.
func (f *memFleet) changed(name, node string) {
	for _, w := range f.watches {
		if node != "" && w.node == node {
			continue
		}
		select {
		case w.ch <- name:
		default: // a test that does not read loses the event
		}
	}
}

// endWatches closes every watch channel, as when the watch fails.
func (f *memFleet) endWatches() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.watches {
		close(w.ch)
	}
	f.watches = nil
}

func (f *memFleet) counts() (views, locks, publishes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.views, f.locks, f.publishes
}

// ariWrites counts the PutARI calls that wrote.
func (f *memFleet) ariWrites() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.aris
}

// memNode is one node's Fleet.
type memNode struct {
	f    *memFleet
	name string
}

func (n *memNode) View(ctx context.Context, certs []Certificate) ([]FleetView, error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views++
	if err := take(&f.viewErr); err != nil {
		return nil, err
	}
	out := make([]FleetView, len(certs))
	for i, c := range certs {
		out[i] = f.snapshot(c.Name, false)
	}
	return out, nil
}

func (n *memNode) Current(ctx context.Context, c Certificate) (FleetBundle, error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.currents++
	if err := take(&f.currentErr); err != nil {
		return FleetBundle{}, err
	}
	if err := f.rec(c.Name).err; err != nil {
		return FleetBundle{}, fmt.Errorf("%w: %w", ErrFleetRecord, err)
	}
	return f.bundle(c.Name), nil
}

func (n *memNode) Lock(ctx context.Context, c Certificate) (FleetLock, error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locks++
	if err := take(&f.lockErr); err != nil {
		return nil, err
	}
	if h, ok := f.holders[c.Name]; ok {
		return nil, &lockfile.HeldError{Path: "/memfleet/" + c.Name + "/lock", Node: h.node, Since: h.since}
	}
	f.token++
	h := memHolder{node: n.name, token: f.token, since: f.now()}
	f.holders[c.Name] = h
	return &memLock{n: n, lineage: c.Name, token: h.token}, nil
}

func (n *memNode) Watch(ctx context.Context) <-chan string {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watchCalls++
	ch := make(chan string, 64)
	f.watches = append(f.watches, memWatch{node: n.name, ch: ch})
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if i := slices.IndexFunc(f.watches, func(w memWatch) bool { return w.ch == ch }); i >= 0 {
			f.watches = slices.Delete(f.watches, i, i+1)
			close(ch)
		}
	})
	return ch
}

// memLock is a held memFleet lock.
type memLock struct {
	n       *memNode
	lineage string
	token   int64
}

// fenced checks, under mu, that the lock is still held.
func (l *memLock) fenced() error {
	if h, ok := l.n.f.holders[l.lineage]; !ok || h.token != l.token {
		return fmt.Errorf("lineage %s: %w", l.lineage, errMemFenced)
	}
	return nil
}

func (l *memLock) Record(ctx context.Context) (FleetView, error) {
	f := l.n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := take(&f.recordErr); err != nil {
		return FleetView{}, err
	}
	if err := l.fenced(); err != nil {
		return FleetView{}, err
	}
	return f.snapshot(l.lineage, true), nil
}

// write applies change to the lineage's record if the lock is still
// held, and tells the watchers (as Fleet.Watch says: not for an ARI
// window).
func (l *memLock) write(change func(f *memFleet, r *memRecord) error) error {
	return l.writeWatched(true, change)
}

func (l *memLock) writeWatched(watched bool, change func(f *memFleet, r *memRecord) error) error {
	f := l.n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := l.fenced(); err != nil {
		return err
	}
	if err := change(f, f.rec(l.lineage)); err != nil {
		return err
	}
	if watched {
		f.changed(l.lineage, "")
	}
	return nil
}

func (l *memLock) Journal(ctx context.Context, o FleetOrder) error {
	return l.write(func(f *memFleet, r *memRecord) error {
		f.journals++
		if err := take(&f.journalErr); err != nil {
			return err
		}
		o.Node, o.Domains, o.Key = l.n.name, slices.Clone(o.Domains), bytes.Clone(o.Key)
		r.order = &o
		return nil
	})
}

func (l *memLock) DropOrder(ctx context.Context) error {
	return l.write(func(f *memFleet, r *memRecord) error {
		r.order = nil
		return nil
	})
}

func (l *memLock) Publish(ctx context.Context, g FleetBundle) error {
	return l.write(func(f *memFleet, r *memRecord) error {
		if g.Number <= r.gen.Number {
			return fmt.Errorf("memfleet: publish generation %d over %d", g.Number, r.gen.Number)
		}
		f.publishes++
		g.Domains = slices.Clone(g.Domains)
		g.Publisher, g.Published = l.n.name, f.now()
		g.Cert, g.Chain, g.Key = bytes.Clone(g.Cert), bytes.Clone(g.Chain), bytes.Clone(g.Key)
		r.gen = g
		r.order = nil
		r.backoff = FleetBackoff{}
		return nil
	})
}

func (l *memLock) Fail(ctx context.Context, b FleetBackoff) error {
	return l.write(func(f *memFleet, r *memRecord) error {
		f.fails++
		r.backoff = b
		return nil
	})
}

func (l *memLock) PutARI(ctx context.Context, w FleetARI) error {
	return l.writeWatched(false, func(f *memFleet, r *memRecord) error {
		f.aris++
		r.ari = w
		return nil
	})
}

func (l *memLock) Unlock() error {
	f := l.n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.holders[l.lineage]; ok && h.token == l.token {
		delete(f.holders, l.lineage)
		// Another node that found the lock held may try again.
		f.changed(l.lineage, l.n.name)
	}
	return nil
}

// MemFleetNodes returns the Fleets of nodes sharing one in-memory fleet,
// for the external tests (package renew_test).
func MemFleetNodes(names ...string) []Fleet {
	fleets, _ := MemFleet(names...)
	return fleets
}

// MemFleet is MemFleetNodes with a function that makes the current holder
// of a lineage's lock lose it (as when its lease expires).
func MemFleet(names ...string) ([]Fleet, func(lineage string)) {
	f := newMemFleet(time.Now)
	out := make([]Fleet, len(names))
	for i, n := range names {
		out[i] = f.node(n)
	}
	return out, f.revoke
}
