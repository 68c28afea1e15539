//go:build linux

package lossyfs

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Available returns nil when a mount can be tried: /dev/fuse exists and
// either the process is root or fusermount3 is on PATH. Otherwise it says
// what is missing.
func Available() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("lossyfs: /dev/fuse: %w", err)
	}
	if os.Geteuid() == 0 {
		return nil
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return fmt.Errorf("lossyfs: not root and no fusermount3 (Debian package fuse3): %w", err)
	}
	return nil
}

// FS is a mounted recording file system. Its methods are safe for
// concurrent use; the operations it records are serialised in the order
// they reached the backing directory.
type FS struct {
	backing, mountpoint string
	server              *fuse.Server

	mu   sync.Mutex
	base *tree // the state at the last checkpoint
	live *tree // base with every recorded operation applied
	ops  []Op
	last NodeID // the last NodeID given out
	// start is the number of operations recorded before the last
	// checkpoint (see Seq).
	start int64
}

// Mount mounts a recording loopback of the directory backing on the
// directory mountpoint (both must exist). What backing holds at the mount
// is the initial, durable state.
func Mount(backing, mountpoint string) (*FS, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	f := &FS{backing: backing, mountpoint: mountpoint}
	t, err := scan(backing, f.nextID)
	if err != nil {
		return nil, fmt.Errorf("lossyfs: read %s: %w", backing, err)
	}
	f.base, f.live = t, t.clone()

	lroot := &gofs.LoopbackRoot{Path: backing}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lossyfs: %s: %w", backing, err)
	}
	lroot.Dev = uint64(st.Dev)
	root := &lnode{LoopbackNode: gofs.LoopbackNode{RootData: lroot}, fs: f, id: t.root}
	lroot.RootNode = root
	zero := time.Duration(0)
	opts := &gofs.Options{
		// No caching of names or attributes: every lookup reaches the
		// model, and nothing is served from a stale cache.
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName:             "lossyfs",
			Name:               "lossyfs",
			DirectMount:        true, // as root: mount(2) without fusermount3
			DisableXAttrs:      true,
			DisableReadDirPlus: true, // every inode comes through Lookup
		},
	}
	srv, err := gofs.Mount(mountpoint, root, opts)
	if err != nil {
		return nil, fmt.Errorf("lossyfs: mount %s on %s: %w", backing, mountpoint, err)
	}
	f.server = srv
	return f, nil
}

// Unmount unmounts the file system; it retries for a while if the mount
// is busy.
func (f *FS) Unmount() error {
	var err error
	for range 50 {
		if err = f.server.Unmount(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("lossyfs: unmount %s: %w", f.mountpoint, err)
}

// Checkpoint makes everything done so far durable (as sync(1) would) and
// starts a new recording.
func (f *FS) Checkpoint() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.start += int64(len(f.ops))
	f.base, f.ops = f.live.clone(), nil
}

// Recording returns the operations since the last checkpoint.
func (f *FS) Recording() *Recording {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := newRecording(f.base.clone(), slices.Clone(f.ops))
	r.start = f.start
	return r
}

// Seq returns the number of operations recorded since the mount: the
// position, in the order of the recorded operations, of the instant it is
// called. Every operation it counts had reached the file system before
// the call, every later one is counted by a later call. A test calls it
// when something outside the file system happens (a request reaches a
// server) and turns the result into a cut point of a recording with
// [Recording.CutOf]: a power cut at that point or later comes after the
// event.
func (f *FS) Seq() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.start + int64(len(f.ops))
}

func (f *FS) nextID() NodeID {
	f.last++
	return f.last
}

// record applies o to the live model and appends it. f.mu is held.
func (f *FS) record(o Op) {
	if o.Path == "" {
		o.Path, _ = f.live.pathOf(o.Node)
	}
	f.live.apply(o)
	f.ops = append(f.ops, o)
}

// lnode is a loopback node that records what changes the backing
// directory.
type lnode struct {
	gofs.LoopbackNode
	fs *FS
	id NodeID // guarded by fs.mu; 0 until known
}

// WrapChild makes every node the loopback creates below n an lnode too
// (go-fuse calls it from NewInode; it replaces LoopbackRoot.NewNode).
func (n *lnode) WrapChild(_ context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	if ln, ok := ops.(*gofs.LoopbackNode); ok {
		return &lnode{LoopbackNode: gofs.LoopbackNode{RootData: ln.RootData}, fs: n.fs}
	}
	return ops
}

// ident returns n's model inode, looking it up by path when not yet known.
// f.mu is held.
func (n *lnode) ident() NodeID {
	if n.id == 0 {
		n.id = n.fs.live.lookup(n.Path(nil))
	}
	return n.id
}

func (n *lnode) backingPath(name string) string {
	return filepath.Join(n.fs.backing, n.Path(nil), name)
}

// child returns the lnode of a child inode.
func child(ch *gofs.Inode) *lnode {
	if ch == nil {
		return nil
	}
	c, _ := ch.Operations().(*lnode)
	return c
}

// entryOp records an operation that made Parent/Name -> a new inode.
func (n *lnode) created(kind OpKind, ch *gofs.Inode, name, target string) {
	c := child(ch)
	if c == nil {
		return
	}
	mode := fs.FileMode(0o600)
	if fi, err := os.Lstat(n.backingPath(name)); err == nil {
		mode = fi.Mode().Perm()
	}
	c.id = n.fs.nextID()
	parent := n.ident()
	n.fs.record(Op{Kind: kind, Node: c.id, Parent: parent, Name: name, Mode: mode, Target: target,
		Path: filepath.Join(n.Path(nil), name)})
}

func (n *lnode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if c := child(ch); c != nil && c.id == 0 {
		if d := n.fs.live.dir(n.ident()); d != nil {
			c.id = d.entries[name]
		}
	}
	return ch, errno
}

func (n *lnode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	existed := n.fs.live.dir(n.ident()) != nil && n.fs.live.dir(n.ident()).entries[name] != 0
	ch, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return ch, fh, fl, errno
	}
	if fh, errno = wrapFile(fh); errno != 0 {
		return nil, nil, 0, errno
	}
	if existed {
		// O_CREAT without O_EXCL on a name that raced into existence: an
		// open, possibly truncating.
		c := child(ch)
		if c.id == 0 {
			c.id = n.fs.live.dir(n.ident()).entries[name]
		}
		if flags&syscall.O_TRUNC != 0 {
			n.fs.record(Op{Kind: OpTruncate, Node: c.id})
		}
		return ch, fh, fl, 0
	}
	n.created(OpCreate, ch, name, "")
	return ch, fh, fl, 0
}

func (n *lnode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.created(OpMkdir, ch, name, "")
	}
	return ch, errno
}

func (n *lnode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	ch, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	if errno == 0 {
		n.created(OpSymlink, ch, name, target)
	}
	return ch, errno
}

func (n *lnode) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	t, ok := target.(*lnode)
	if !ok {
		return nil, syscall.EXDEV
	}
	ch, errno := n.LoopbackNode.Link(ctx, target, name, out)
	if errno == 0 {
		n.fs.record(Op{Kind: OpLink, Node: t.ident(), Parent: n.ident(), Name: name, Path: filepath.Join(n.Path(nil), name)})
		if c := child(ch); c != nil && c.id == 0 {
			c.id = t.ident()
		}
	}
	return ch, errno
}

func (n *lnode) remove(kind OpKind, name string, do func() syscall.Errno) syscall.Errno {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	var victim NodeID
	if d := n.fs.live.dir(n.ident()); d != nil {
		victim = d.entries[name]
	}
	errno := do()
	if errno == 0 {
		n.fs.record(Op{Kind: kind, Node: victim, Parent: n.ident(), Name: name, Path: filepath.Join(n.Path(nil), name)})
	}
	return errno
}

func (n *lnode) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(OpUnlink, name, func() syscall.Errno { return n.LoopbackNode.Unlink(ctx, name) })
}

func (n *lnode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(OpRmdir, name, func() syscall.Errno { return n.LoopbackNode.Rmdir(ctx, name) })
}

func (n *lnode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*lnode)
	if !ok {
		return syscall.EXDEV
	}
	const renameNoReplace = 1 // RENAME_NOREPLACE; other flags are not modelled
	if flags&^renameNoReplace != 0 {
		return syscall.EINVAL
	}
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	var moved NodeID
	if d := n.fs.live.dir(n.ident()); d != nil {
		moved = d.entries[name]
	}
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 {
		n.fs.record(Op{Kind: OpRename, Node: moved, Parent: n.ident(), Name: name,
			NewParent: np.ident(), NewName: newName, Path: filepath.Join(np.Path(nil), newName)})
	}
	return errno
}

func (n *lnode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, fl, errno
	}
	if fh, errno = wrapFile(fh); errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		n.fs.record(Op{Kind: OpTruncate, Node: n.ident()})
	}
	return fh, fl, errno
}

func (n *lnode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	errno := n.LoopbackNode.Setattr(ctx, f, in, out)
	if errno != 0 {
		return errno
	}
	if sz, ok := in.GetSize(); ok {
		n.fs.record(Op{Kind: OpTruncate, Node: n.ident(), Size: int64(sz)})
	}
	if m, ok := in.GetMode(); ok {
		n.fs.record(Op{Kind: OpChmod, Node: n.ident(), Mode: fs.FileMode(m).Perm()})
	}
	return 0
}

func (n *lnode) Write(ctx context.Context, f gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	w, ok := f.(gofs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	written, errno := w.Write(ctx, data, off)
	if written > 0 {
		n.fs.record(Op{Kind: OpWrite, Node: n.ident(), Off: off, Data: slices.Clone(data[:written])})
	}
	return written, errno
}

func (n *lnode) Writev(ctx context.Context, f gofs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	return n.Write(ctx, f, slices.Concat(data...), off)
}

func (n *lnode) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	n.fs.record(Op{Kind: OpFsync, Node: n.ident(), DataOnly: flags&1 != 0})
	return 0
}

// OpendirHandle wraps the loopback directory handle so that fsync of a
// directory is recorded (the bridge asks the handle first).
func (n *lnode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return fh, fl, errno
	}
	ds, ok := fh.(dirStream)
	if !ok {
		return nil, 0, syscall.EIO
	}
	return &dirHandle{dirStream: ds, n: n}, fl, 0
}

// fileOps are the methods of a loopback file handle the mount uses.
type fileOps interface {
	gofs.FileReader
	gofs.FileWriter
	gofs.FileFlusher
	gofs.FileReleaser
	gofs.FileGetattrer
	gofs.FileSetattrer
	gofs.FileLseeker
}

// fileHandle hides the loopback file's PassthroughFd: with FUSE
// passthrough (Linux 6.9 and later, as root) the kernel would write to the
// backing file directly, and the writes would never be recorded.
type fileHandle struct{ fileOps }

func wrapFile(fh gofs.FileHandle) (gofs.FileHandle, syscall.Errno) {
	ops, ok := fh.(fileOps)
	if !ok {
		if r, ok := fh.(gofs.FileReleaser); ok {
			r.Release(context.Background())
		}
		return nil, syscall.EIO
	}
	return &fileHandle{ops}, 0
}

type dirStream interface {
	gofs.FileReaddirenter
	gofs.FileSeekdirer
	gofs.FileReleasedirer
}

type dirHandle struct {
	dirStream
	n *lnode
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.n.Fsync(ctx, nil, flags)
}

// Operations that are not modelled are refused rather than recorded wrongly.

func (n *lnode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

func (n *lnode) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.ENOTSUP
}

func (n *lnode) CopyFileRange(context.Context, gofs.FileHandle, uint64, *gofs.Inode, gofs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

func (n *lnode) Allocate(context.Context, gofs.FileHandle, uint64, uint64, uint32) syscall.Errno {
	return syscall.ENOTSUP
}

func (n *lnode) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.ENOTSUP
}

func (n *lnode) Removexattr(context.Context, string) syscall.Errno { return syscall.ENOTSUP }

var (
	_ gofs.NodeWriter     = (*lnode)(nil)
	_ gofs.NodeWritever   = (*lnode)(nil)
	_ gofs.NodeFsyncer    = (*lnode)(nil)
	_ gofs.NodeSetattrer  = (*lnode)(nil)
	_ gofs.NodeAllocater  = (*lnode)(nil)
	_ gofs.NodeTmpfiler   = (*lnode)(nil)
	_ gofs.FileFsyncdirer = (*dirHandle)(nil)
)
