package lossyfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// NodeID identifies an inode of the model. IDs are never reused.
type NodeID uint64

// OpKind is the kind of a recorded operation.
type OpKind int

// The recorded operations.
const (
	OpCreate   OpKind = iota // a new regular file: Parent/Name -> Node
	OpMkdir                  // a new directory: Parent/Name -> Node
	OpSymlink                // a new symbolic link: Parent/Name -> Node (Target)
	OpLink                   // a new name for an existing inode: Parent/Name -> Node
	OpUnlink                 // Parent/Name (was Node) removed
	OpRmdir                  // Parent/Name (was Node) removed
	OpRename                 // Parent/Name (Node) moved to NewParent/NewName
	OpWrite                  // Data at Off of Node
	OpTruncate               // Node's size set to Size
	OpChmod                  // Node's mode set to Mode
	OpFsync                  // fsync (DataOnly: fdatasync) of Node, a file or a directory
)

var opNames = [...]string{"create", "mkdir", "symlink", "link", "unlink", "rmdir", "rename", "write", "truncate", "chmod", "fsync"}

func (k OpKind) String() string {
	if int(k) < len(opNames) {
		return opNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Op is one recorded operation.
type Op struct {
	Kind      OpKind
	Node      NodeID
	Parent    NodeID
	Name      string
	NewParent NodeID
	NewName   string
	Off       int64
	Data      []byte
	Size      int64
	Mode      fs.FileMode // permission bits (create, mkdir, chmod)
	Target    string      // symlink target
	DataOnly  bool        // fdatasync
	// Path is where the operation happened, relative to the mount, at the
	// time it happened (the entry's path for entry operations, the new
	// path of a rename, the inode's path, or its last path when it has
	// none). For reports and for telling a program's own files apart.
	Path string
}

func (o Op) String() string {
	switch o.Kind {
	case OpWrite:
		return fmt.Sprintf("write %s @%d+%d", o.Path, o.Off, len(o.Data))
	case OpTruncate:
		return fmt.Sprintf("truncate %s %d", o.Path, o.Size)
	case OpChmod:
		return fmt.Sprintf("chmod %s %v", o.Path, o.Mode)
	case OpFsync:
		if o.DataOnly {
			return "fdatasync " + o.Path
		}
		return "fsync " + o.Path
	case OpRename:
		return fmt.Sprintf("rename %s -> %s", o.Name, o.Path)
	case OpSymlink:
		return fmt.Sprintf("symlink %s -> %s", o.Path, o.Target)
	}
	return o.Kind.String() + " " + o.Path
}

// syncTarget is the inode whose fsync makes o durable, and whether an
// fdatasync is enough; 0 for an fsync itself.
func (o Op) syncTarget() (NodeID, bool) {
	switch o.Kind {
	case OpCreate, OpMkdir, OpSymlink, OpLink, OpUnlink, OpRmdir:
		return o.Parent, false
	case OpRename:
		return o.NewParent, false
	case OpWrite, OpTruncate:
		return o.Node, true
	case OpChmod:
		return o.Node, false
	}
	return 0, false
}

type nodeKind byte

const (
	kindFile nodeKind = 'f'
	kindDir  nodeKind = 'd'
	kindLink nodeKind = 'l'
)

// node is one inode of the model.
type node struct {
	kind    nodeKind
	mode    fs.FileMode // permission bits
	data    []byte
	target  string
	entries map[string]NodeID
}

// tree is a file system state: inodes by ID, and the root directory.
type tree struct {
	nodes map[NodeID]*node
	root  NodeID
}

func newTree(root NodeID, mode fs.FileMode) *tree {
	return &tree{nodes: map[NodeID]*node{root: {kind: kindDir, mode: mode, entries: map[string]NodeID{}}}, root: root}
}

func (t *tree) clone() *tree {
	c := &tree{nodes: make(map[NodeID]*node, len(t.nodes)), root: t.root}
	for id, n := range t.nodes {
		m := *n
		m.data = slices.Clone(n.data)
		if n.entries != nil {
			m.entries = make(map[string]NodeID, len(n.entries))
			for k, v := range n.entries {
				m.entries[k] = v
			}
		}
		c.nodes[id] = &m
	}
	return c
}

// dir returns the directory id, or nil when it is not one.
func (t *tree) dir(id NodeID) *node {
	if n := t.nodes[id]; n != nil && n.kind == kindDir {
		return n
	}
	return nil
}

// allocate makes the inode o creates, if it creates one, without an entry:
// an empty file, an empty directory, or a symbolic link.
func (t *tree) allocate(o Op) {
	var k nodeKind
	switch o.Kind {
	case OpCreate:
		k = kindFile
	case OpMkdir:
		k = kindDir
	case OpSymlink:
		k = kindLink
	default:
		return
	}
	if t.nodes[o.Node] == nil {
		n := &node{kind: k, mode: o.Mode, target: o.Target}
		if k == kindDir {
			n.entries = map[string]NodeID{}
		}
		t.nodes[o.Node] = n
	}
}

// apply replays o, as far as it can be applied (see the package doc).
func (t *tree) apply(o Op) {
	switch o.Kind {
	case OpCreate, OpMkdir, OpSymlink:
		t.allocate(o)
		if d := t.dir(o.Parent); d != nil {
			d.entries[o.Name] = o.Node
		}
	case OpLink:
		if d := t.dir(o.Parent); d != nil && t.nodes[o.Node] != nil {
			d.entries[o.Name] = o.Node
		}
	case OpUnlink, OpRmdir:
		if d := t.dir(o.Parent); d != nil && d.entries[o.Name] == o.Node {
			delete(d.entries, o.Name)
		}
	case OpRename:
		if t.nodes[o.Node] == nil {
			return
		}
		if d := t.dir(o.Parent); d != nil && d.entries[o.Name] == o.Node {
			delete(d.entries, o.Name)
		}
		if d := t.dir(o.NewParent); d != nil {
			d.entries[o.NewName] = o.Node
		}
	case OpWrite:
		if n := t.nodes[o.Node]; n != nil && n.kind == kindFile {
			end := o.Off + int64(len(o.Data))
			if int64(len(n.data)) < end {
				n.data = append(n.data, make([]byte, end-int64(len(n.data)))...)
			}
			copy(n.data[o.Off:], o.Data)
		}
	case OpTruncate:
		if n := t.nodes[o.Node]; n != nil && n.kind == kindFile {
			if int64(len(n.data)) > o.Size {
				n.data = n.data[:o.Size]
			} else {
				n.data = append(n.data, make([]byte, o.Size-int64(len(n.data)))...)
			}
		}
	case OpChmod:
		if n := t.nodes[o.Node]; n != nil {
			n.mode = o.Mode
		}
	}
}

// lookup resolves a slash-separated path relative to the root (no symbolic
// links are followed); 0 when it does not exist.
func (t *tree) lookup(path string) NodeID {
	id := t.root
	for _, c := range strings.Split(filepath.ToSlash(filepath.Clean(path)), "/") {
		if c == "" || c == "." {
			continue
		}
		d := t.dir(id)
		if d == nil {
			return 0
		}
		if id = d.entries[c]; id == 0 {
			return 0
		}
	}
	return id
}

// pathOf returns a path of id reachable from the root ("" for the root),
// and whether it was found.
func (t *tree) pathOf(id NodeID) (string, bool) {
	if id == t.root {
		return "", true
	}
	var found string
	ok := false
	seen := map[NodeID]bool{}
	var walk func(dir NodeID, prefix string)
	walk = func(dir NodeID, prefix string) {
		d := t.dir(dir)
		if d == nil || seen[dir] || ok {
			return
		}
		seen[dir] = true
		for _, name := range sortedNames(d) {
			child := d.entries[name]
			p := filepath.Join(prefix, name)
			if child == id {
				found, ok = p, true
				return
			}
			walk(child, p)
		}
	}
	walk(t.root, "")
	return found, ok
}

func sortedNames(d *node) []string {
	names := make([]string, 0, len(d.entries))
	for k := range d.entries {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// walk visits the subtree at the top-level names tops (all of the root
// when tops is empty) in a fixed order, each directory once.
func (t *tree) walk(tops []string, visit func(path string, id NodeID, n *node, again bool) error) error {
	seen := map[NodeID]bool{}
	var rec func(path string, id NodeID) error
	rec = func(path string, id NodeID) error {
		n := t.nodes[id]
		if n == nil {
			return nil
		}
		again := seen[id]
		seen[id] = true
		if err := visit(path, id, n, again); err != nil {
			return err
		}
		if n.kind != kindDir || again {
			return nil
		}
		for _, name := range sortedNames(n) {
			if err := rec(filepath.Join(path, name), n.entries[name]); err != nil {
				return err
			}
		}
		return nil
	}
	rootDir := t.dir(t.root)
	names := tops
	if len(names) == 0 {
		names = sortedNames(rootDir)
	}
	for _, name := range names {
		if id := rootDir.entries[name]; id != 0 {
			if err := rec(name, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// digest is a hash of the subtrees tops: names, kinds, modes, contents,
// targets and which names share an inode.
func (t *tree) digest(tops []string) string {
	h := sha256.New()
	ids := map[NodeID]int{}
	_ = t.walk(tops, func(path string, id NodeID, n *node, again bool) error {
		if _, ok := ids[id]; !ok {
			ids[id] = len(ids)
		}
		fmt.Fprintf(h, "%q %c %o #%d", path, n.kind, n.mode, ids[id])
		if !again {
			switch n.kind {
			case kindFile:
				fmt.Fprintf(h, " %d:", len(n.data))
				h.Write(n.data)
			case kindLink:
				fmt.Fprintf(h, " -> %q", n.target)
			}
		}
		h.Write([]byte{0})
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}

// materialize writes the subtrees tops into dir, which must exist and be
// empty: directories, files and symbolic links with their modes; names
// sharing a file inode become hard links. A directory reachable under two
// names (a state that replays a later rename of it but not an earlier one)
// is written under the first name only.
func (t *tree) materialize(dir string, tops []string) error {
	first := map[NodeID]string{}
	var dirs []string
	var modes []fs.FileMode
	err := t.walk(tops, func(path string, id NodeID, n *node, again bool) error {
		p := filepath.Join(dir, path)
		if again {
			if n.kind == kindFile {
				return os.Link(first[id], p)
			}
			return nil
		}
		first[id] = p
		switch n.kind {
		case kindDir:
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			dirs, modes = append(dirs, p), append(modes, n.mode)
		case kindLink:
			return os.Symlink(n.target, p)
		case kindFile:
			if err := os.WriteFile(p, n.data, 0o600); err != nil {
				return err
			}
			return os.Chmod(p, n.mode)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lossyfs: materialize into %s: %w", dir, err)
	}
	// Directory modes last: a mode without the owner's write bit would
	// have stopped the walk from filling the directory.
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], modes[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lossyfs: materialize into %s: %w", dir, err)
	}
	return nil
}

// scan builds a tree from the directory at path, giving inodes IDs from
// next (hard links keep sharing one).
func scan(path string, next func() NodeID) (*tree, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	t := newTree(next(), fi.Mode().Perm())
	byIno := map[uint64]NodeID{}
	var rec func(dir NodeID, p string) error
	rec = func(dir NodeID, p string) error {
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range ents {
			cp := filepath.Join(p, e.Name())
			fi, err := os.Lstat(cp)
			if err != nil {
				return err
			}
			ino := inodeNumber(fi)
			if id, ok := byIno[ino]; ok && ino != 0 && !fi.IsDir() {
				t.nodes[dir].entries[e.Name()] = id
				continue
			}
			id := next()
			byIno[ino] = id
			n := &node{mode: fi.Mode().Perm()}
			switch {
			case fi.IsDir():
				n.kind, n.entries = kindDir, map[string]NodeID{}
			case fi.Mode()&fs.ModeSymlink != 0:
				n.kind = kindLink
				if n.target, err = os.Readlink(cp); err != nil {
					return err
				}
			case fi.Mode().IsRegular():
				n.kind = kindFile
				if n.data, err = os.ReadFile(cp); err != nil {
					return err
				}
			default:
				return fmt.Errorf("lossyfs: %s: %v files are not supported", cp, fi.Mode().Type())
			}
			t.nodes[id] = n
			t.nodes[dir].entries[e.Name()] = id
			if n.kind == kindDir {
				if err := rec(id, cp); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := rec(t.root, path); err != nil {
		return nil, err
	}
	return t, nil
}

// inodeNumber is fi's inode number, or 0 where the platform has none.
func inodeNumber(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
