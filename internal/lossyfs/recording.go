package lossyfs

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
)

// Recording is what a [FS] recorded since its last checkpoint: the state at
// the checkpoint and the operations that followed, in order. It is
// immutable and independent of the mount, and safe for concurrent use.
type Recording struct {
	base *tree
	ops  []Op
	// syncedAt[i] is the index of the first fsync after op i that makes it
	// durable, or len(ops) when there is none.
	syncedAt []int
	// start is the FS's Seq at the checkpoint the recording starts from.
	start int64
	// orig, in a recording made by Without, maps each operation to its
	// index in the recording the FS made, of origLen operations; nil: the
	// identity.
	orig    []int
	origLen int
}

func newRecording(base *tree, ops []Op) *Recording {
	r := &Recording{base: base, ops: ops, syncedAt: make([]int, len(ops))}
	// Scan backwards, remembering the next fsync and fdatasync of each
	// inode.
	nextSync := map[NodeID]int{}
	nextDataSync := map[NodeID]int{}
	for i := len(ops) - 1; i >= 0; i-- {
		o := ops[i]
		r.syncedAt[i] = len(ops)
		if target, dataOK := o.syncTarget(); target != 0 {
			if j, ok := nextSync[target]; ok {
				r.syncedAt[i] = j
			}
			if j, ok := nextDataSync[target]; ok && dataOK && j < r.syncedAt[i] {
				r.syncedAt[i] = j
			}
		}
		if o.Kind == OpFsync {
			nextDataSync[o.Node] = i
			if !o.DataOnly {
				nextSync[o.Node] = i
			}
		}
	}
	return r
}

// Len is the number of operations; the cut points are 0 … Len.
func (r *Recording) Len() int { return len(r.ops) }

// CutOf returns the cut point of the recording at which an event
// happened whose position [FS.Seq] gave as seq: a power cut at that point
// or later came after the event, one before it came before. It is
// negative for an event before the recording began (every cut comes after
// it) and more than Len for one after it ended.
// In a recording made by [Recording.Without], the cut point counts only
// the operations left in.
func (r *Recording) CutOf(seq int64) int {
	c := int(seq - r.start)
	if r.orig == nil || c <= 0 {
		return c
	}
	if c > r.origLen {
		return len(r.ops) + c - r.origLen
	}
	n, _ := slices.BinarySearch(r.orig, c)
	return n
}

// Op returns operation i.
func (r *Recording) Op(i int) Op { return r.ops[i] }

// Durable reports whether operation i is durable at the cut p (i < p): an
// fsync that makes it durable happened before p.
func (r *Recording) Durable(i, p int) bool { return r.syncedAt[i] < p }

// Under reports whether operation i happened under one of the top-level
// names tops of the mount.
func (r *Recording) Under(i int, tops ...string) bool {
	first, _, _ := strings.Cut(filepath.ToSlash(r.ops[i].Path), "/")
	for _, t := range tops {
		if first == t {
			return true
		}
	}
	return false
}

// state replays the operations i < p for which keep(i) holds on the state
// at the checkpoint.
func (r *Recording) state(p int, keep func(i int) bool) *tree {
	t := r.base.clone()
	// Every inode created before p exists, reachable or not: what a kept
	// write or rename does to it must not depend on whether the entry that
	// named it first was kept.
	for _, o := range r.ops[:p] {
		t.allocate(o)
	}
	for i := range p {
		if keep(i) {
			t.apply(r.ops[i])
		}
	}
	return t
}

// Disk is one possible disk after a power cut.
type Disk struct {
	// Cut is the cut point: the operations before it had happened.
	Cut int
	// Kind says which non-durable operations were kept: "durable" (none),
	// "all", or "subset-N".
	Kind string
	// Lost is the number of operations not kept.
	Lost int
	// Digest identifies the state of the subtrees the disk was made for:
	// two disks with the same digest are the same.
	Digest string

	tops []string
	t    *tree
}

// Materialize writes the disk's subtrees into dir (which must exist and be
// empty), as ordinary files: the program under test can then be run on
// dir, not on the mount.
func (d Disk) Materialize(dir string) error { return d.t.materialize(dir, d.tops) }

// ReadFile returns the content of the file at path (relative to the mount)
// on the disk, and whether it is a regular file there.
func (d Disk) ReadFile(path string) ([]byte, bool) { return readFile(d.t, path) }

func readFile(t *tree, path string) ([]byte, bool) {
	n := t.nodes[t.lookup(path)]
	if n == nil || n.kind != kindFile {
		return nil, false
	}
	return n.data, true
}

func (d Disk) String() string {
	return fmt.Sprintf("cut %d, %s (%d operations lost)", d.Cut, d.Kind, d.Lost)
}

// Disk returns the disk a power cut at p leaves in the subtrees tops
// (top-level names of the mount; empty: everything) when, of the
// operations before p that are not durable, exactly those for which keep
// holds reached the disk. kind names the choice in reports.
func (r *Recording) Disk(p int, kind string, keep func(i int) bool, tops ...string) Disk {
	lost := 0
	t := r.state(p, func(i int) bool {
		switch {
		case r.Durable(i, p):
			return true
		case keep(i):
			return true
		}
		if len(tops) == 0 || r.Under(i, tops...) {
			lost++
		}
		return false
	})
	return Disk{Cut: p, Kind: kind, Lost: lost, Digest: t.digest(tops), tops: tops, t: t}
}

// Loose returns the operations before p, under tops, that are not durable
// at p: those a power cut at p may lose.
func (r *Recording) Loose(p int, tops ...string) []int {
	var loose []int
	for i := range p {
		if !r.Durable(i, p) && (len(tops) == 0 || r.Under(i, tops...)) {
			loose = append(loose, i)
		}
	}
	return loose
}

// Disks returns the distinct disks a power cut at p can leave in the
// subtrees tops: every operation durable at p is kept, and of the others
// under tops ([Recording.Loose]) none ("durable"), all ("all"), when single
// is set the systematic families — each one alone ("only-I": what one
// operation does without the others), all but each one ("except-I": what
// the others do without it), and each proper prefix in program order
// ("first-K": a file system that wrote its cache back in order and was cut
// off midway) — and subsets random subsets drawn from rng, each operation
// kept with probability ½ ("subset-N"). The systematic families do not
// depend on rng: a check that one of them fails is found at every seed.
// Operations outside tops are dropped unless durable: they are not looked
// at. Duplicates (same digest) are dropped.
func (r *Recording) Disks(p, subsets int, single bool, rng *rand.Rand, tops ...string) []Disk {
	loose := r.Loose(p, tops...)
	var out []Disk
	seen := map[string]bool{}
	add := func(kind string, kept map[int]bool) {
		d := r.Disk(p, kind, func(i int) bool { return kept[i] }, tops...)
		if !seen[d.Digest] {
			seen[d.Digest] = true
			out = append(out, d)
		}
	}
	add("durable", nil)
	all := make(map[int]bool, len(loose))
	for _, i := range loose {
		all[i] = true
	}
	add("all", all)
	if len(loose) < 2 {
		return out
	}
	if single {
		for _, i := range loose {
			add(fmt.Sprintf("only-%d", i), map[int]bool{i: true})
		}
		for _, i := range loose {
			kept := make(map[int]bool, len(loose))
			for _, j := range loose {
				kept[j] = j != i
			}
			add(fmt.Sprintf("except-%d", i), kept)
		}
		for k := 1; k < len(loose); k++ {
			kept := make(map[int]bool, k)
			for _, i := range loose[:k] {
				kept[i] = true
			}
			add(fmt.Sprintf("first-%d", k), kept)
		}
	}
	for k := range subsets {
		kept := map[int]bool{}
		for _, i := range loose {
			if rng.IntN(2) == 0 {
				kept[i] = true
			}
		}
		add(fmt.Sprintf("subset-%d", k+1), kept)
	}
	return out
}

// Volatile returns the content at the cut p of the file at path (relative
// to the mount) as the running program saw it, durable or not, and whether
// it was a regular file then. Tests use it for files that record what a
// program did (a trace, a log of hook runs): what had happened by p.
func (r *Recording) Volatile(p int, path string) ([]byte, bool) {
	return readFile(r.state(p, func(int) bool { return true }), path)
}

// Final is the disk with every operation kept: the state the mount had when
// the recording was taken.
func (r *Recording) Final(tops ...string) Disk {
	t := r.state(len(r.ops), func(int) bool { return true })
	return Disk{Cut: len(r.ops), Kind: "all", Digest: t.digest(tops), tops: tops, t: t}
}

// Without returns the recording with the operations at the indices drop
// left out: for fsyncs, the run as it would have been without those calls
// (an fsync changes nothing the program sees, only what is durable).
// Tests use it to find out what an fsync protects.
func (r *Recording) Without(drop ...int) *Recording {
	ops := make([]Op, 0, len(r.ops))
	orig := make([]int, 0, len(r.ops))
	for i, o := range r.ops {
		if !slices.Contains(drop, i) {
			ops = append(ops, o)
			orig = append(orig, r.origIndex(i))
		}
	}
	w := newRecording(r.base, ops)
	w.start, w.orig, w.origLen = r.start, orig, len(r.ops)
	if r.orig != nil {
		w.origLen = r.origLen
	}
	return w
}

// origIndex is operation i's index in the recording the FS made.
func (r *Recording) origIndex(i int) int {
	if r.orig == nil {
		return i
	}
	return r.orig[i]
}
