package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/renewkit/renewkit/lockfile"
)

// Lock is a held fleet lock on one lineage. It is the fence of every write
// the holder makes: a write succeeds only while the lock key still exists
// with the create revision it had when the lock was taken. A Lock is safe for
// concurrent use.
type Lock struct {
	c       *Client
	lineage string
	key     string
	rev     int64 // the lock key's create revision
	modRev  int64 // its mod revision: rewritten when a ghost is adopted
	lost    <-chan struct{}

	mu       sync.Mutex
	released bool
}

// Lineage returns the lineage the lock is for.
func (l *Lock) Lineage() string { return l.lineage }

// Key returns the etcd lock key.
func (l *Lock) Key() string { return l.key }

// Revision returns the create revision of the lock key: the fencing token.
// It increases with every acquisition of the lineage's lock, fleet-wide.
func (l *Lock) Revision() int64 { return l.rev }

// Lost returns a channel closed when the client's lease is known to be gone
// (its keep-alive failed until the lease expired, or the client was closed).
// It is advice for stopping work early: fencing does not depend on it, and a
// paused process learns it only when it runs again.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Unlock releases the lock: it deletes the lock key if, and only if, it is
// still this acquisition's (so it never deletes a later holder's lock). It is
// idempotent. If etcd is unreachable the lock is released when the lease
// expires, after at most LockTTL, and the error matches [ErrUnavailable].
func (l *Lock) Unlock() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	err := l.c.call(context.Background(), "unlock "+l.key, func(ctx context.Context) error {
		_, err := l.c.cli.Txn(ctx).If(l.cmp()...).Then(clientv3.OpDelete(l.key)).Commit()
		return err
	})
	if err == nil {
		l.released = true
	}
	// Released or not, this Lock no longer holds the key for its client:
	// should the delete have failed (etcd unreachable), the key stays on
	// the lease, and the client's next TryLock of the lineage adopts it
	// rather than finding it held by a holder that is gone.
	l.c.forget(l)
	return err
}

// forget drops l from its client's live locks.
func (c *Client) forget(l *Lock) {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	if c.live[l.key] == l {
		delete(c.live, l.key)
	}
}

// hold records l as a live lock of its client. (An earlier Lock of a key l
// adopted is fenced out by the key's new mod revision, see TryLockFenced.)
func (c *Client) hold(l *Lock) {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	if c.live == nil {
		c.live = make(map[string]*Lock)
	}
	c.live[l.key] = l
}

// ghost reports whether kv, the lock key found held, is on lease but held
// by no live Lock of this client and being taken by no other goroutine of
// it: an acquisition of ours that nobody holds.
func (c *Client) ghost(kvLease, lease int64, key string) bool {
	if kvLease != lease {
		return false
	}
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	return c.live[key] == nil && c.acquiring[key] == 1
}

// acquire counts a TryLockFenced of key in progress until the returned
// func is called: another goroutine's committed but not yet recorded lock
// is then not mistaken for a ghost.
func (c *Client) acquire(key string) (done func()) {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	if c.acquiring == nil {
		c.acquiring = make(map[string]int)
	}
	c.acquiring[key]++
	return func() {
		c.liveMu.Lock()
		defer c.liveMu.Unlock()
		if c.acquiring[key]--; c.acquiring[key] <= 0 {
			delete(c.acquiring, key)
		}
	}
}

// cmp is the fencing condition: the lock key exists with our create
// revision, unchanged since we took it (its mod revision: a Lock superseded
// by the adoption of its key, which rewrites the key, fences out).
func (l *Lock) cmp() []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev),
		clientv3.Compare(clientv3.ModRevision(l.key), "=", l.modRev),
	}
}

// TryLockFenced takes the fleet-wide lock of a lineage without waiting, in
// one transaction: create the lock key with this client's lease if it does
// not exist, else read it. Contention returns a [*lockfile.HeldError] naming the
// holder node (Path: the etcd lock key; errors.Is(err, lockfile.ErrLocked)), also when the holder is
// this client. The lock lasts while the client's lease is kept alive: a
// holder that dies loses it after at most LockTTL.
//
// The lock is a single key, not the queue of concurrency.Mutex: TryLock never
// waits, so there is no queue to join, and the key's value names the holder
// (concurrency.Mutex stores an empty value, so the holder could not be named
// without a second, non-atomic write). Sessions (the lease and its
// keep-alive) come from the concurrency package.
func (c *Client) TryLockFenced(ctx context.Context, lineage string) (*Lock, error) {
	if err := checkName(lineage); err != nil {
		return nil, err
	}
	key := c.keys.state(lineage, KindLock)
	sess, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	value := encode(lockRecord{V: recordVersion, Node: c.node, Since: c.now().UTC()})
	defer c.acquire(key)()
	var resp *clientv3.TxnResponse
	for attempt := 0; ; attempt++ {
		err = c.call(ctx, "lock "+key, func(ctx context.Context) error {
			var err error
			resp, err = c.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
				Then(clientv3.OpPut(key, value, clientv3.WithLease(sess.Lease()))).
				Else(clientv3.OpGet(key)).
				Commit()
			return err
		})
		// The lease expired before the keep-alive noticed: once, with a new one.
		if attempt > 0 || !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			break
		}
		if sess, err = c.newSession(ctx, sess); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	rev, modRev := resp.Header.Revision, resp.Header.Revision
	if !resp.Succeeded {
		kvs := resp.Responses[len(resp.Responses)-1].GetResponseRange().GetKvs()
		if len(kvs) == 0 || !c.ghost(kvs[0].Lease, int64(sess.Lease()), key) {
			return nil, c.heldError(key, resp)
		}
		// Ours, held by nobody: a lock transaction that committed while its
		// reply was lost, or a Lock whose Unlock failed. Without adopting it
		// the lineage would stay locked fleet-wide for as long as this
		// client keeps its lease alive. The key is rewritten (same lease,
		// same create revision): its new mod revision fences out the Lock
		// whose Unlock failed, should it be used again.
		c.log.Warn("fleet: adopting a lock of this client that no holder had (a lost reply or a failed unlock)", "key", key)
		rev = kvs[0].CreateRevision
		var aresp *clientv3.TxnResponse
		err := c.call(ctx, "adopt lock "+key, func(ctx context.Context) error {
			var err error
			aresp, err = c.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev),
					clientv3.Compare(clientv3.LeaseValue(key), "=", int64(sess.Lease()))).
				Then(clientv3.OpPut(key, value, clientv3.WithLease(sess.Lease()))).
				Else(clientv3.OpGet(key)).
				Commit()
			return err
		})
		if err != nil {
			return nil, err
		}
		if !aresp.Succeeded {
			return nil, c.heldError(key, aresp)
		}
		modRev = aresp.Header.Revision
	}
	l := &Lock{c: c, lineage: lineage, key: key, rev: rev, modRev: modRev, lost: sess.Done()}
	c.hold(l)
	return l, nil
}

// heldError describes the holder found in the Else branch of a lock or
// fenced transaction, whose response is an OpGet of key.
func (c *Client) heldError(key string, resp *clientv3.TxnResponse) *lockfile.HeldError {
	he := &lockfile.HeldError{Path: key, Node: "(unknown)"}
	if len(resp.Responses) == 0 {
		return he
	}
	kvs := resp.Responses[len(resp.Responses)-1].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		he.Node = "(none)"
		return he
	}
	var rec lockRecord
	if err := decode(key, kvs[0].Value, MaxStateSize, &rec); err != nil {
		// The holder is certain (the key exists); only its name is not.
		c.log.Warn("fleet: unreadable lock value", "key", key, "err", err)
		return he
	}
	he.Node, he.Since = rec.Node, rec.Since
	return he
}

// session returns the client's live session, granting a new lease when there
// is none or the last one expired. The grant is bounded by RequestTimeout;
// the keep-alive then runs until Close.
func (c *Client) session(ctx context.Context) (*concurrency.Session, error) {
	return c.newSession(ctx, nil)
}

// newSession is session, but also replaces the session dead, which etcd said
// is gone before its keep-alive noticed.
func (c *Client) newSession(ctx context.Context, dead *concurrency.Session) (*concurrency.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		expired := c.sess == dead
		if !expired {
			select {
			case <-c.sess.Done():
				expired = true
			default:
			}
		}
		if !expired {
			return c.sess, nil
		}
		c.log.Warn("fleet: lease expired or keep-alive lost; locks held with it are gone", "lease", fmt.Sprintf("%x", int64(c.sess.Lease())))
		c.sess.Orphan()
		c.sess = nil
	}
	var id clientv3.LeaseID
	err := c.call(ctx, "grant lease", func(ctx context.Context) error {
		resp, err := c.cli.Grant(ctx, c.ttl)
		if err == nil {
			id = resp.ID
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sess, err := concurrency.NewSession(c.cli, concurrency.WithLease(id), concurrency.WithContext(c.bg), concurrency.WithTTL(int(c.ttl)))
	if err != nil {
		return nil, c.classify(ctx, "keep lease alive", err)
	}
	c.sess = sess
	if c.leases == nil {
		c.leases = make(map[clientv3.LeaseID]bool)
	}
	c.leases[id] = true
	return sess, nil
}

// ownLease reports whether lease is one this client was granted (its
// locks were, or are, on it).
func (c *Client) ownLease(lease int64) bool {
	if lease == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leases[clientv3.LeaseID(lease)]
}
