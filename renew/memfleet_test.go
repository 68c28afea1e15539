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
	watches []chan string

	// Injected failures: the next calls of each kind fail with these
	// (nil: succeed).
	viewErr, currentErr, lockErr, recordErr, journalErr error

	// Counters of calls, under mu.
	views, currents, locks, publishes, journals, fails, watchCalls, aris int
}

// memRecord is one lineage's state in a memFleet.
type memRecord struct {
	gen       FleetRecord // Generation … Key
	order     *InFlight
	orderNode string
	orderKey  []byte
	failures  int
	retryNB   time.Time
	lastError string
	failedCfg string
	ari       FleetRecord // ARISerial … ARINextFetch
	err       error       // reported in the record's Err
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

// record returns a copy of what the fleet holds for name.
func (f *memFleet) record(name string) FleetRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snapshot(name, true, true)
}

// snapshot is the FleetRecord of name, with the generation's PEM and/or
// the order's key when asked. Under mu.
func (f *memFleet) snapshot(name string, pem, orderKey bool) FleetRecord {
	r := f.rec(name)
	out := r.gen
	out.Name = name
	if !pem {
		out.Cert, out.Chain, out.Key = nil, nil, nil
	}
	if r.order != nil {
		o := *r.order
		out.Order = &o
		out.OrderNode = r.orderNode
		if orderKey {
			out.OrderKey = slices.Clone(r.orderKey)
		}
	}
	out.Failures, out.RetryNotBefore, out.LastError, out.FailedConfig = r.failures, r.retryNB, r.lastError, r.failedCfg
	out.ARISerial, out.ARIStart, out.ARIEnd, out.ARIExplanationURL, out.ARINextFetch = r.ari.ARISerial, r.ari.ARIStart, r.ari.ARIEnd, r.ari.ARIExplanationURL, r.ari.ARINextFetch
	if h, ok := f.holders[name]; ok {
		out.Holder, out.HolderSince = h.node, h.since
	}
	out.Err = r.err
	return out
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

// changed tells the watchers that name's record changed. Under mu.
func (f *memFleet) changed(name string) {
	for _, w := range f.watches {
		select {
		case w <- name:
		default: // a test that does not read loses the event
		}
	}
}

// endWatches closes every watch channel, as when the watch fails.
func (f *memFleet) endWatches() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.watches {
		close(w)
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

func (n *memNode) View(ctx context.Context, certs []Certificate) ([]FleetRecord, error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views++
	if err := take(&f.viewErr); err != nil {
		return nil, err
	}
	out := make([]FleetRecord, len(certs))
	for i, c := range certs {
		out[i] = f.snapshot(c.Name, false, false)
	}
	return out, nil
}

func (n *memNode) Current(ctx context.Context, c Certificate) (FleetRecord, error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.currents++
	if err := take(&f.currentErr); err != nil {
		return FleetRecord{}, err
	}
	return f.snapshot(c.Name, true, false), nil
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
	f.watches = append(f.watches, ch)
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if i := slices.Index(f.watches, ch); i >= 0 {
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

func (l *memLock) Record(ctx context.Context) (FleetRecord, error) {
	f := l.n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := take(&f.recordErr); err != nil {
		return FleetRecord{}, err
	}
	if err := l.fenced(); err != nil {
		return FleetRecord{}, err
	}
	return f.snapshot(l.lineage, false, true), nil
}

// write applies change to the lineage's record if the lock is still
// held, and tells the watchers.
func (l *memLock) write(change func(f *memFleet, r *memRecord) error) error {
	f := l.n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := l.fenced(); err != nil {
		return err
	}
	if err := change(f, f.rec(l.lineage)); err != nil {
		return err
	}
	f.changed(l.lineage)
	return nil
}

func (l *memLock) Journal(ctx context.Context, order InFlight, keyPEM []byte) error {
	return l.write(func(f *memFleet, r *memRecord) error {
		f.journals++
		if err := take(&f.journalErr); err != nil {
			return err
		}
		r.order, r.orderNode, r.orderKey = &order, l.n.name, bytes.Clone(keyPEM)
		return nil
	})
}

func (l *memLock) DropOrder(ctx context.Context) error {
	return l.write(func(f *memFleet, r *memRecord) error {
		r.order, r.orderNode, r.orderKey = nil, "", nil
		return nil
	})
}

func (l *memLock) Publish(ctx context.Context, g FleetRecord) error {
	return l.write(func(f *memFleet, r *memRecord) error {
		if g.Generation <= r.gen.Generation {
			return fmt.Errorf("memfleet: publish generation %d over %d", g.Generation, r.gen.Generation)
		}
		f.publishes++
		r.gen = FleetRecord{
			Generation: g.Generation, Serial: g.Serial, Domains: slices.Clone(g.Domains), NotBefore: g.NotBefore, NotAfter: g.NotAfter,
			Publisher: l.n.name, Published: f.now(),
			Cert: bytes.Clone(g.Cert), Chain: bytes.Clone(g.Chain), Key: bytes.Clone(g.Key),
		}
		r.order, r.orderNode, r.orderKey = nil, "", nil
		r.failures, r.retryNB, r.lastError, r.failedCfg = 0, time.Time{}, "", ""
		return nil
	})
}

func (l *memLock) Fail(ctx context.Context, b FleetRecord) error {
	return l.write(func(f *memFleet, r *memRecord) error {
		f.fails++
		r.failures, r.retryNB, r.lastError, r.failedCfg = b.Failures, b.RetryNotBefore, b.LastError, b.FailedConfig
		return nil
	})
}

func (l *memLock) PutARI(ctx context.Context, a FleetRecord) error {
	return l.write(func(f *memFleet, r *memRecord) error {
		f.aris++
		r.ari = FleetRecord{ARISerial: a.ARISerial, ARIStart: a.ARIStart, ARIEnd: a.ARIEnd, ARIExplanationURL: a.ARIExplanationURL, ARINextFetch: a.ARINextFetch}
		return nil
	})
}

func (l *memLock) Unlock() error {
	f := l.n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.holders[l.lineage]; ok && h.token == l.token {
		delete(f.holders, l.lineage)
	}
	return nil
}

// MemFleetNodes returns the Fleets of nodes sharing one in-memory fleet,
// for the external tests (package renew_test).
func MemFleetNodes(names ...string) []Fleet {
	f := newMemFleet(time.Now)
	out := make([]Fleet, len(names))
	for i, n := range names {
		out[i] = f.node(n)
	}
	return out
}
