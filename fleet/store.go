package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/renewkit/renewkit/internal/textclip"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// State is what the fleet knows about one lineage, from one read (ReadStates).
// Pointers are nil when the record does not exist.
type State struct {
	Lineage     string
	Meta        *Meta    // the current generation, nil before the first publish
	Journal     *Journal // an order in progress, KeyPEM unsealed
	Backoff     *Backoff
	ARI         *ARI
	Holder      string    // the node holding the lock, "" if none
	HolderSince time.Time // when it took the lock

	// Err is the first bad record of this lineage (a [*RecordError]); the
	// fields of the other records are still filled in. A lineage with Err
	// must not be renewed or installed until the record is fixed.
	Err error
}

// Snapshot is the state of many lineages at one etcd revision.
type Snapshot struct {
	// Revision is the etcd revision the snapshot was read at: every change
	// after it has a higher revision.
	Revision int64
	// States has one entry per lineage asked for, records or not.
	States map[string]*State
}

// ReadStates reads the state of the given lineages at one etcd revision,
// in two linearizable reads whatever the number of lineages: a listing of
// the state keys (keys only, in pages of [listPage]), then the values of
// the known records of the lineages asked for, in as few ranges as the
// listing allows (one when nothing else lies between them). Records of
// lineages not asked for, and keys of unknown kinds, are never fetched:
// foreign or junk records under the prefix cost a node their key names,
// not their values, and what is fetched is bounded by the number of
// lineages asked for. A bad record makes only its lineage's State.Err
// non-nil; the error return is for etcd failures ([ErrUnavailable]) and
// invalid lineage names.
func (c *Client) ReadStates(ctx context.Context, lineages ...Lineage) (*Snapshot, error) {
	return c.readStates(ctx, c.keys.statePrefix(), lineages)
}

// listPage is the number of keys per page of ReadStates' listing.
const listPage = 8192

// maxFetchOps is the number of ranges per transaction of ReadStates'
// fetch: etcd's default limit of operations per transaction (--max-txn-ops).
const maxFetchOps = 128

// readStates is ReadStates over the state keys under prefix: all of them, or
// one lineage's (keyspace.lineagePrefix).
func (c *Client) readStates(ctx context.Context, prefix string, lineages []Lineage) (*Snapshot, error) {
	want := make(map[string]Lineage, len(lineages))
	snap := &Snapshot{States: make(map[string]*State, len(lineages))}
	for _, l := range lineages {
		if err := checkLineageArg(l); err != nil {
			return nil, err
		}
		want[l.Name] = l
		snap.States[l.Name] = &State{Lineage: l.Name}
	}
	// The listing: the runs of consecutive keys to fetch. Over the whole
	// state prefix, it also lists the bundle keys (bundle/ sorts before
	// state/; whatever lies between is skipped unfetched): a publish writes
	// a lineage's meta record and bundle in one transaction, so a bundle
	// whose mod revision is not its meta record's was written by something
	// else, and is checked (checkBundle) although no run needs it now.
	type run struct{ first, last string }
	var runs []run
	open := false
	bundleRev := map[string]int64{}
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	if prefix == c.keys.statePrefix() {
		from = c.keys.bundle("")
	}
	for {
		var resp *clientv3.GetResponse
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(listPage)}
		if snap.Revision != 0 {
			opts = append(opts, clientv3.WithRev(snap.Revision))
		}
		err := c.call(ctx, "list "+prefix, func(ctx context.Context) error {
			var err error
			resp, err = c.cli.Get(ctx, from, opts...)
			return err
		})
		if err != nil {
			return nil, err
		}
		if snap.Revision == 0 {
			snap.Revision = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			key := string(kv.Key)
			if name, ok := strings.CutPrefix(key, c.keys.bundle("")); ok {
				if snap.States[name] != nil {
					bundleRev[name] = kv.ModRevision
				}
				open = false
				continue
			}
			name, kind, ok := c.keys.splitState(key)
			st := snap.States[name]
			if !ok || st == nil {
				open = false
				continue
			}
			if !knownKind(kind) {
				// Not fetched: its kind says enough.
				if st.Err == nil {
					st.Err = recordErr(key, "unknown record kind %q (written by a newer version?)", kind)
				}
				open = false
				continue
			}
			if open {
				runs[len(runs)-1].last = key
			} else {
				runs = append(runs, run{first: key, last: key})
				open = true
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	// The fetch, at the listing's revision.
	legacy := 0
	metaRev := map[string]int64{}
	take := func(kvs []*mvccpb.KeyValue) {
		for _, kv := range kvs {
			key := string(kv.Key)
			name, kind, _ := c.keys.splitState(key)
			st := snap.States[name]
			if st == nil || !knownKind(kind) {
				continue // cannot be: the ranges hold listed keys only
			}
			if kind == KindMeta {
				metaRev[name] = kv.ModRevision
			}
			err := c.decodeState(st, want[name], key, kind, kv.Value)
			if errors.Is(err, errLegacy) {
				legacy++
				continue
			}
			if err != nil && st.Err == nil {
				st.Err = err
			}
		}
	}
	for len(runs) > 0 {
		batch := runs[:min(len(runs), maxFetchOps)]
		runs = runs[len(batch):]
		if len(batch) == 1 {
			var resp *clientv3.GetResponse
			err := c.call(ctx, "read "+prefix, func(ctx context.Context) error {
				var err error
				resp, err = c.cli.Get(ctx, batch[0].first, clientv3.WithRange(batch[0].last+"\x00"), clientv3.WithRev(snap.Revision))
				return err
			})
			if err != nil {
				return nil, err
			}
			take(resp.Kvs)
			continue
		}
		ops := make([]clientv3.Op, len(batch))
		for i, r := range batch {
			ops[i] = clientv3.OpGet(r.first, clientv3.WithRange(r.last+"\x00"), clientv3.WithRev(snap.Revision))
		}
		var resp *clientv3.TxnResponse
		err := c.call(ctx, "read "+prefix, func(ctx context.Context) error {
			var err error
			resp, err = c.cli.Txn(ctx).Then(ops...).Commit()
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Responses {
			take(r.GetResponseRange().GetKvs())
		}
	}
	if legacy > 0 {
		c.log.Warn("fleet: ignoring records of the unauthenticated format of earlier releases; the fleet's next writes replace them", "records", legacy, "prefix", prefix)
	}
	if prefix == c.keys.statePrefix() {
		for name, st := range snap.States {
			if st.Meta != nil && st.Err == nil && bundleRev[name] != metaRev[name] {
				if err := c.checkBundle(ctx, want[name], st.Meta, snap.Revision); err != nil {
					if !errors.Is(err, ErrRecord) {
						return nil, err
					}
					st.Err = err
				}
			}
		}
	}
	return snap, nil
}

// checkBundle reads the bundle of l at revision rev and checks that it is
// the generation meta describes: called when the bundle was not written
// with its meta record (their mod revisions differ).
func (c *Client) checkBundle(ctx context.Context, l Lineage, meta *Meta, rev int64) error {
	key := c.keys.bundle(l.Name)
	var resp *clientv3.GetResponse
	err := c.call(ctx, "read "+key, func(ctx context.Context) error {
		var err error
		resp, err = c.cli.Get(ctx, key, clientv3.WithRev(rev))
		return err
	})
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return recordErr(key, "missing: the meta record names generation %d (serial %s), but there is no bundle to install it from", meta.Number, meta.Serial)
	}
	var rec bundleRecord
	if err := c.unwrap(key, kindBundle, l.Name, resp.Kvs[0].Value, MaxBundleSize, &rec); err != nil {
		return err
	}
	if rec.Meta.Number != meta.Number || rec.Meta.Serial != meta.Serial || rec.Meta.CertSHA256 != meta.CertSHA256 {
		return recordErr(key, "holds generation %d (serial %s), but the meta record names generation %d (serial %s): not written by the publish of the meta record (a replayed or restored bundle)",
			rec.Meta.Number, rec.Meta.Serial, meta.Number, meta.Serial)
	}
	return nil
}

// knownKind reports whether kind is a record kind of a lineage's state.
func knownKind(kind Kind) bool {
	switch kind {
	case KindLock, KindMeta, KindJournal, KindBackoff, KindARI:
		return true
	}
	return false
}

// decodeState decodes one state record into st. A legacy record
// (errLegacy) leaves st as if it were absent; the caller counts it.
func (c *Client) decodeState(st *State, l Lineage, key string, kind Kind, value []byte) error {
	switch kind {
	case KindLock:
		var rec lockRecord
		if err := decodeVersion(key, value, MaxStateSize, &rec, lockVersion); err != nil {
			st.Holder = "(unknown)"
			return err
		}
		st.Holder, st.HolderSince = rec.Node, rec.Since
	case KindMeta:
		var rec metaRecord
		if err := c.unwrap(key, string(kind), l.Name, value, MaxStateSize, &rec); err != nil {
			return err
		}
		if err := c.checkMeta(key, l, rec.Lineage, &rec.Meta); err != nil {
			return err
		}
		st.Meta = &rec.Meta
	case KindJournal:
		j, err := c.decodeJournal(key, l, value)
		if err != nil {
			return err
		}
		st.Journal = j
	case KindBackoff:
		var rec backoffRecord
		if err := c.unwrap(key, string(kind), l.Name, value, MaxStateSize, &rec); err != nil {
			return err
		}
		if err := checkLineage(key, rec.Lineage, l.Name); err != nil {
			return err
		}
		b := rec.Backoff
		if b.Failures < 0 {
			return recordErr(key, "%d failures, want at least 0", b.Failures)
		}
		// As the local backoff: never more than MaxBackoffDelay after the
		// failure, and never counted from a failure in the future.
		from := b.LastFailure
		if now := c.now(); from.IsZero() || from.After(now) {
			from = now
		}
		if limit := from.Add(MaxBackoffDelay); b.NotBefore.After(limit) {
			c.log.Warn("fleet: backoff record says not before a date more than the longest backoff after its failure; capped", "key", key, "not_before", b.NotBefore, "capped_to", limit)
			b.NotBefore = limit
		}
		st.Backoff = &b
	case KindARI:
		var rec ariRecord
		if err := c.unwrap(key, string(kind), l.Name, value, MaxStateSize, &rec); err != nil {
			return err
		}
		if err := checkLineage(key, rec.Lineage, l.Name); err != nil {
			return err
		}
		st.ARI = &rec.ARI
	default:
		return recordErr(key, "unknown record kind %q (written by a newer version?)", kind)
	}
	return nil
}

// checkMeta checks a meta record (or a bundle's) of lineage l. Its names
// are not checked against l's: a generation for other names is the
// fleet's generation from before the lineage's names were changed, which
// the reader replaces (Meta.Names says which names it is for), not a bad
// record.
func (c *Client) checkMeta(key string, l Lineage, lineage string, m *Meta) error {
	if err := checkLineage(key, lineage, l.Name); err != nil {
		return err
	}
	if m.Number < 1 || m.Number > MaxGeneration {
		return recordErr(key, "generation number %d, want 1 to %d", m.Number, int64(MaxGeneration))
	}
	if !m.NotAfter.After(m.NotBefore) {
		return recordErr(key, "validity %v to %v is empty", m.NotBefore, m.NotAfter)
	}
	return nil
}

func (c *Client) decodeJournal(key string, l Lineage, value []byte) (*Journal, error) {
	var rec journalRecord
	if err := c.unwrap(key, string(KindJournal), l.Name, value, MaxStateSize, &rec); err != nil {
		return nil, err
	}
	// An order for other names than l's (placed before the lineage's names
	// changed) is reported as it is (Journal.Names): the reader drops it.
	if err := checkLineage(key, rec.Lineage, l.Name); err != nil {
		return nil, err
	}
	keyPEM, err := c.sealer.unseal(rec.Key, key, l.Name, "key")
	if err != nil {
		return nil, err
	}
	return &Journal{OrderURL: rec.OrderURL, Names: rec.Names, Created: rec.Created, Node: rec.Node, KeyPEM: keyPEM}, nil
}

// ReadGeneration reads the fleet's current generation of l, with its key
// unsealed: what a node installs. No generation yet is an error matching
// [fs.ErrNotExist]. A bundle that does not decode or unseal is a
// [*RecordError] naming its key; one for other names than l's is returned
// (Names says which), for the caller to replace rather than install.
func (c *Client) ReadGeneration(ctx context.Context, l Lineage) (*Generation, error) {
	if err := checkLineageArg(l); err != nil {
		return nil, err
	}
	key := c.keys.bundle(l.Name)
	v, err := c.getOne(ctx, key, "no generation published")
	if err != nil {
		return nil, err
	}
	var rec bundleRecord
	if err := c.unwrap(key, kindBundle, l.Name, v, MaxBundleSize, &rec); err != nil {
		if errors.Is(err, errLegacy) {
			c.log.Warn("fleet: ignoring a record of the unauthenticated format of earlier releases; the fleet's next publish replaces it", "key", key)
			return nil, fmt.Errorf("fleet: read %s: %w: %w", key, fs.ErrNotExist, err)
		}
		return nil, err
	}
	if err := c.checkMeta(key, l, rec.Lineage, &rec.Meta); err != nil {
		return nil, err
	}
	if rec.CertPEM == "" {
		return nil, recordErr(key, "no certificate")
	}
	if hexSHA256(rec.CertPEM) != rec.Meta.CertSHA256 || hexSHA256(rec.ChainPEM) != rec.Meta.ChainSHA256 {
		return nil, recordErr(key, "the certificate or chain is not the one the record's SHA-256 names")
	}
	keyPEM, err := c.sealer.unseal(rec.Key, key, l.Name, "key")
	if err != nil {
		return nil, err
	}
	return &Generation{Meta: rec.Meta, CertPEM: []byte(rec.CertPEM), ChainPEM: []byte(rec.ChainPEM), KeyPEM: keyPEM}, nil
}

// ErrNotNewer is matched by the error of [Client.PublishGeneration] when the
// fleet already has a generation with the same or a higher number: nothing
// was written, the fleet's state does not go back.
var ErrNotNewer = errors.New("fleet: generation not newer than the fleet's")

// PublishGeneration makes g the fleet's current generation of l, under lock:
//
//  1. Read the current meta record (its generation number and revision).
//  2. Refuse g unless its number is higher ([ErrNotNewer]).
//  3. One transaction, if the lock is still ours (fencing) and the meta record
//     is unchanged since step 1: put the meta record and the bundle (with the
//     key sealed), delete the order journal (the order is done) and the
//     cross-run backoff (it succeeded).
//
// Step 3 is atomic: every reader sees the old generation or the new one,
// with or without the journal, never a mix. A lost lock is [ErrFenced]; an
// outcome unknown (timeout) is [ErrUnavailable]: read the state again after
// retaking the lock. g.IssuedBy and g.Published default to this node and now.
func (c *Client) PublishGeneration(ctx context.Context, l *Lock, lin Lineage, g Generation) error {
	if err := checkLineageArg(lin); err != nil {
		return err
	}
	if err := c.checkLock(l, lin.Name); err != nil {
		return err
	}
	metaKey, bundleKey := c.keys.state(lin.Name, KindMeta), c.keys.bundle(lin.Name)
	if g.Number < 1 || len(g.CertPEM) == 0 || len(g.KeyPEM) == 0 {
		return fmt.Errorf("fleet: publish %s: generation %d incomplete (number, certificate and key are required)", bundleKey, g.Number)
	}
	if g.Number > MaxGeneration {
		return fmt.Errorf("fleet: publish %s: generation number %d exceeds the limit of %d every node reads; nothing written (the numbers of this lineage were driven up: delete its records, see the package doc on a restore)", bundleKey, g.Number, int64(MaxGeneration))
	}
	g.CertSHA256, g.ChainSHA256 = hexSHA256(string(g.CertPEM)), hexSHA256(string(g.ChainPEM))
	g.Names = sortedNames(g.Names)
	if err := checkNames(bundleKey, lin, g.Names); err != nil {
		return fmt.Errorf("fleet: publish: %w", err)
	}
	if g.IssuedBy == "" {
		g.IssuedBy = c.node
	}
	if g.Published.IsZero() {
		g.Published = c.now().UTC()
	}
	// (1)
	var cur *clientv3.GetResponse
	err := c.call(ctx, "read "+metaKey, func(ctx context.Context) error {
		var err error
		cur, err = c.cli.Get(ctx, metaKey)
		return err
	})
	if err != nil {
		return err
	}
	// (2)
	var modRev int64
	if len(cur.Kvs) > 0 {
		modRev = cur.Kvs[0].ModRevision
		var rec metaRecord
		// A bad current record does not stop a publish: it repairs it. One
		// written by a newer version of this package is not bad, only
		// unreadable here: overwriting it would roll the fleet back.
		if v := storedVersion(cur.Kvs[0].Value); v > recordVersion {
			return fmt.Errorf("fleet: publish %s: the fleet's record is of version %d, newer than this node's %d: upgrade this node", metaKey, v, recordVersion)
		}
		if c.unwrap(metaKey, string(KindMeta), lin.Name, cur.Kvs[0].Value, MaxStateSize, &rec) == nil && rec.Number >= g.Number {
			return fmt.Errorf("fleet: publish %s: generation %d: %w (fleet has %d, serial %s)", bundleKey, g.Number, ErrNotNewer, rec.Number, rec.Serial)
		}
	}
	// (3)
	meta := c.wrap(metaKey, string(KindMeta), lin.Name, metaRecord{V: recordVersion, Lineage: lin.Name, Meta: g.Meta})
	bundle := c.wrap(bundleKey, kindBundle, lin.Name, bundleRecord{
		V: recordVersion, Lineage: lin.Name, Meta: g.Meta,
		CertPEM: string(g.CertPEM), ChainPEM: string(g.ChainPEM),
		Key: c.sealer.seal(g.KeyPEM, bundleKey, lin.Name, "key"),
	})
	if err := errors.Join(checkSize(metaKey, meta, MaxStateSize), checkSize(bundleKey, bundle, MaxBundleSize)); err != nil {
		return err
	}
	return c.fenced(ctx, l, "publish "+bundleKey,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(metaKey), "=", modRev)},
		clientv3.OpPut(metaKey, meta),
		clientv3.OpPut(bundleKey, bundle),
		clientv3.OpDelete(c.keys.state(lin.Name, KindJournal)),
		clientv3.OpDelete(c.keys.state(lin.Name, KindBackoff)),
	)
}

// PutJournal records, under lock, the order in progress for lin: write it
// before finalizing the order, so that whichever node holds the lock next
// finishes it instead of ordering again. j.KeyPEM is sealed.
func (c *Client) PutJournal(ctx context.Context, l *Lock, lin Lineage, j Journal) error {
	if err := checkLineageArg(lin); err != nil {
		return err
	}
	if err := c.checkLock(l, lin.Name); err != nil {
		return err
	}
	key := c.keys.state(lin.Name, KindJournal)
	j.Names = sortedNames(j.Names)
	if err := checkNames(key, lin, j.Names); err != nil {
		return fmt.Errorf("fleet: write journal: %w", err)
	}
	if j.OrderURL == "" || len(j.KeyPEM) == 0 {
		return fmt.Errorf("fleet: write %s: order URL and key are required", key)
	}
	if j.Node == "" {
		j.Node = c.node
	}
	value := c.wrap(key, string(KindJournal), lin.Name, journalRecord{
		V: recordVersion, Lineage: lin.Name, OrderURL: j.OrderURL, Names: j.Names,
		Created: j.Created, Node: j.Node, Key: c.sealer.seal(j.KeyPEM, key, lin.Name, "key"),
	})
	if err := checkSize(key, value, MaxStateSize); err != nil {
		return err
	}
	return c.fenced(ctx, l, "write "+key, nil, clientv3.OpPut(key, value))
}

// ClearJournal deletes, under lock, the order journal of the lock's lineage
// (an order abandoned; a published generation clears it itself).
func (c *Client) ClearJournal(ctx context.Context, l *Lock) error {
	if l == nil {
		return errors.New("fleet: write: no lock")
	}
	key := c.keys.state(l.lineage, KindJournal)
	return c.fenced(ctx, l, "delete "+key, nil, clientv3.OpDelete(key))
}

// PutBackoff records, under lock, the cross-run backoff of the lock's
// lineage. LastError is cut to MaxErrorText bytes; Node defaults to this node.
func (c *Client) PutBackoff(ctx context.Context, l *Lock, b Backoff) error {
	if l == nil {
		return errors.New("fleet: write: no lock")
	}
	key := c.keys.state(l.lineage, KindBackoff)
	b.LastError = textclip.Head(b.LastError, MaxErrorText)
	if b.Node == "" {
		b.Node = c.node
	}
	value := c.wrap(key, string(KindBackoff), l.lineage, backoffRecord{V: recordVersion, Lineage: l.lineage, Backoff: b})
	if err := checkSize(key, value, MaxStateSize); err != nil {
		return err
	}
	return c.fenced(ctx, l, "write "+key, nil, clientv3.OpPut(key, value))
}

// PutARI records, under lock, the ARI state of the lock's lineage.
func (c *Client) PutARI(ctx context.Context, l *Lock, a ARI) error {
	if l == nil {
		return errors.New("fleet: write: no lock")
	}
	key := c.keys.state(l.lineage, KindARI)
	value := c.wrap(key, string(KindARI), l.lineage, ariRecord{V: recordVersion, Lineage: l.lineage, ARI: a})
	if err := checkSize(key, value, MaxStateSize); err != nil {
		return err
	}
	return c.fenced(ctx, l, "write "+key, nil, clientv3.OpPut(key, value))
}

func (c *Client) checkLock(l *Lock, lineage string) error {
	if l == nil || l.c != c || l.lineage != lineage {
		return fmt.Errorf("fleet: write lineage %q: not under a lock of this client for it", lineage)
	}
	return nil
}

// checkSize refuses to write a record every reader would refuse (their
// limit), naming the key.
func checkSize(key, value string, limit int) error {
	if len(value) > limit {
		return fmt.Errorf("fleet: write %s: the record is %d bytes, more than the %d every node reads; nothing written", key, len(value), limit)
	}
	return nil
}

// hexSHA256 is the SHA-256 of s, hex.
func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// storedVersion is the version field of an encoded record, 0 if it has
// none that can be read.
func storedVersion(value []byte) int {
	var v struct {
		V int `json:"v"`
	}
	if json.Unmarshal(value, &v) != nil {
		return 0
	}
	return v.V
}

// fenced runs ops in one transaction that succeeds only while l is held
// (its key exists with its create revision) and the extra comparisons hold.
// A failed fence is ErrFenced, naming the current holder.
func (c *Client) fenced(ctx context.Context, l *Lock, what string, extra []clientv3.Cmp, ops ...clientv3.Op) error {
	if l == nil || l.c != c {
		return fmt.Errorf("fleet: %s: not under a lock of this client", what)
	}
	cmps := append(l.cmp(), extra...)
	var resp *clientv3.TxnResponse
	err := c.call(ctx, what, func(ctx context.Context) error {
		var err error
		resp, err = c.cli.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(l.key)).Commit()
		return err
	})
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 1 && kvs[0].CreateRevision == l.rev && kvs[0].ModRevision == l.modRev {
		return fmt.Errorf("fleet: %s: changed by someone not holding the lock meanwhile; nothing written", what)
	}
	now := "no one holds it now"
	if he := c.heldError(l.key, resp); he.Node != "(none)" {
		now = fmt.Sprintf("now held by node %q", he.Node)
	}
	return fmt.Errorf("fleet: %s: %w: lock %s taken at revision %d is gone or was taken over, %s", what, ErrFenced, l.key, l.rev, now)
}

// change is one change of a lineage's state record, as seen by
// Client.watch. A change with Err set is the last one on its channel.
type change struct {
	Lineage string
	Kind    Kind
	Deleted bool
	// Lease is the lease the record was on before the change (a lock key:
	// its holder's), 0 if none or unknown.
	Lease    int64
	Revision int64 // the etcd revision of the change; with a compaction error, the compacted revision
	Err      error // the watch ended: ErrUnavailable, or a compacted revision
}

// watch reports every change to any lineage's state records after revision
// afterRev (typically [Snapshot.Revision]) until ctx ends. Changes say what
// changed, not its new content: read it with [Client.ReadStates] or
// [Client.ReadGeneration] (a publish changes the meta record and the bundle
// in one revision).
//
// The channel is closed when ctx ends or the watch fails; a failure is sent
// first as a change with Err (the member lost its leader: [ErrUnavailable];
// the revision was compacted: read again and watch from the new revision).
// A watch on an unreachable cluster may instead stay silent while the client
// reconnects, so a long-running node also reads on a timer.
func (c *Client) watch(ctx context.Context, afterRev int64) <-chan change {
	out := make(chan change)
	prefix := c.keys.statePrefix()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := c.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(afterRev+1), clientv3.WithPrevKV())
	go func() {
		defer close(out)
		defer cancel()
		send := func(ch change) bool {
			select {
			case out <- ch:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					send(change{Err: c.classify(ctx, "watch "+prefix, err), Revision: resp.CompactRevision})
				}
				return
			}
			for _, ev := range resp.Events {
				name, kind, ok := c.keys.splitState(string(ev.Kv.Key))
				if !ok {
					continue
				}
				ch := change{Lineage: name, Kind: kind, Deleted: ev.Type == mvccpb.DELETE, Revision: ev.Kv.ModRevision}
				if ev.PrevKv != nil {
					ch.Lease = ev.PrevKv.Lease
				}
				if !send(ch) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			send(change{Err: fmt.Errorf("fleet: watch %s: %w: watch channel closed", prefix, ErrUnavailable)})
		}
	}()
	return out
}

// getOne reads the value of one key, linearizably. A missing key is an
// error matching [fs.ErrNotExist] that says absent.
func (c *Client) getOne(ctx context.Context, key, absent string) ([]byte, error) {
	var resp *clientv3.GetResponse
	err := c.call(ctx, "read "+key, func(ctx context.Context) error {
		var err error
		resp, err = c.cli.Get(ctx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("fleet: read %s: %s: %w", key, absent, fs.ErrNotExist)
	}
	return resp.Kvs[0].Value, nil
}
