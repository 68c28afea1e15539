package hooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of a [CommandHook].
const (
	// defaultTimeout bounds one run of a command, its children included.
	defaultTimeout = 2 * time.Minute
	// defaultWaitDelay is how long a run waits, after the command exited or
	// was killed, for the processes it left behind to close its output.
	defaultWaitDelay = 5 * time.Second
	// defaultOutputLimit is how many bytes of output (the last ones) a run
	// keeps.
	defaultOutputLimit = 64 << 10
)

// errorOutputLimit bounds the output quoted in a commandError's message.
const errorOutputLimit = 4 << 10

// CommandHook is a [Hook] that executes a program without a shell.
//
// It is built by [Command] or [Reload] and configured by its With methods,
// which return modified copies: a CommandHook is never changed after it is
// built, and Run is safe for concurrent use.
type CommandHook struct {
	argv      []string
	name      string
	timeout   time.Duration
	waitDelay time.Duration
	limit     int
	dir       string
	inherit   []string // names of variables copied from this process
	env       []string // KEY=VALUE
	err       error    // a configuration error reported by Run
}

var _ Hook = (*CommandHook)(nil)

// Command returns a hook that executes argv[0] with arguments argv[1:], with
// no shell involved: argv[0] is looked up in this process's PATH when it
// contains no slash, and every argument reaches the program as written.
//
// The hook's name (its journal key) is argv joined by spaces, with arguments
// that are empty or contain characters other than letters, digits and
// "@%+=:,./-_" quoted in Go syntax; [CommandHook.WithName] replaces it.
//
// A run is bounded by 2 minutes ([CommandHook.WithTimeout] changes it); its environment is described in the
// package documentation; its output is captured as described at
// [CommandHook.RunOutput]. An empty argv is reported by Run as
// an error.
func Command(argv ...string) *CommandHook {
	return &CommandHook{
		argv:      slices.Clone(argv),
		name:      commandName(argv),
		timeout:   defaultTimeout,
		waitDelay: defaultWaitDelay,
		limit:     defaultOutputLimit,
	}
}

// Reload returns Command("systemctl", "try-reload-or-restart", unit): reload
// the unit if it supports reloading, restart it otherwise, and do nothing if
// it is not running. An empty unit, or one starting with "-" (which systemctl
// would read as an option), is reported by Run.
func Reload(unit string) *CommandHook {
	h := Command("systemctl", "try-reload-or-restart", unit)
	if unit == "" || strings.HasPrefix(unit, "-") {
		h.err = fmt.Errorf("Reload: invalid unit name %q", unit)
	}
	return h
}

func (h *CommandHook) clone() *CommandHook {
	c := *h
	c.argv = slices.Clone(h.argv)
	c.inherit = slices.Clone(h.inherit)
	c.env = slices.Clone(h.env)
	return &c
}

// WithName returns a copy of h whose name (journal key) is name. Use it when
// two hooks would otherwise share a name, or to keep a name stable while the
// command line changes.
func (h *CommandHook) WithName(name string) *CommandHook {
	c := h.clone()
	c.name = name
	return c
}

// WithTimeout returns a copy of h whose runs are killed (with their whole
// process group) after d. A d of zero or less disables the timeout, leaving
// the context passed to Run as the only bound.
func (h *CommandHook) WithTimeout(d time.Duration) *CommandHook {
	c := h.clone()
	c.timeout = d
	return c
}

// WithWaitDelay returns a copy of h that waits at most d, after the command
// exited or was killed, for processes it left behind to close its output
// (a success whose output is closed by force is logged by [Journal]). A d of zero or less restores [defaultWaitDelay];
// an unbounded wait is not offered, since it could hang the renewal.
func (h *CommandHook) WithWaitDelay(d time.Duration) *CommandHook {
	c := h.clone()
	if d <= 0 {
		d = defaultWaitDelay
	}
	c.waitDelay = d
	return c
}

// WithOutputLimit returns a copy of h that keeps the last n bytes of output
// instead of [defaultOutputLimit]. With n zero or less no output is kept
// (it is still counted).
func (h *CommandHook) WithOutputLimit(n int) *CommandHook {
	c := h.clone()
	c.limit = max(n, 0)
	return c
}

// WithDir returns a copy of h that runs the command in dir. The zero value
// (the default) runs it in this process's current directory.
func (h *CommandHook) WithDir(dir string) *CommandHook {
	c := h.clone()
	c.dir = dir
	return c
}

// WithEnv returns a copy of h that adds the given KEY=VALUE variables to the
// command's environment, after the inherited ones (which they override) and
// before the variables of [Event.Env] (which override them). A malformed
// entry is reported by Run.
func (h *CommandHook) WithEnv(kv ...string) *CommandHook {
	c := h.clone()
	for _, e := range kv {
		k, _, ok := strings.Cut(e, "=")
		if (!ok || k == "" || strings.ContainsRune(e, 0)) && c.err == nil {
			c.err = fmt.Errorf("environment entry %q is not KEY=VALUE", e)
		}
	}
	c.env = append(c.env, kv...)
	return c
}

// WithInheritEnv returns a copy of h that also passes the named variables of
// this process's environment (when set) to the command, for instance
// XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS for `systemctl --user`.
func (h *CommandHook) WithInheritEnv(names ...string) *CommandHook {
	c := h.clone()
	c.inherit = append(c.inherit, names...)
	return c
}

// Name returns the hook's journal key (see [Command]).
func (h *CommandHook) Name() string { return h.name }

// Argv returns a copy of the command line.
func (h *CommandHook) Argv() []string { return slices.Clone(h.argv) }

// Run executes the command for ev (see [CommandHook.RunOutput]) and discards
// its output on success.
func (h *CommandHook) Run(ctx context.Context, ev Event) error {
	_, err := h.run(ctx, ev)
	return err
}

// RunOutput executes the command for ev and returns its output: the
// standard output and error, combined, as text (invalid UTF-8 replaced),
// at most the last bytes the output limit keeps, prefixed by a marker when
// the beginning was dropped.
//
// The command runs in a new process group with the environment described in
// the package documentation, standard input from /dev/null, and standard
// output and error captured together: the last bytes up to the output limit
// are kept, so a command printing gigabytes costs bounded memory.
//
// When the timeout expires or ctx ends, every process of the group is
// killed with SIGKILL, also when the command itself has already exited and
// only processes it left behind remain. A process that left the group
// (setsid, a double fork into a new group) escapes that kill; a process
// still holding the output open after the wait delay has its pipe closed.
//
// A nil error means the command exited with status 0. Otherwise the error
// names the command, quotes the end of its output, and wraps: the
// *[exec.ExitError] for a non-zero exit; [context.DeadlineExceeded] for a
// timeout; ctx's error when ctx ended; the start error (matching
// [exec.ErrNotFound] or [io/fs.ErrNotExist] for a missing program); or
// [errors.ErrUnsupported] on a system without process groups.
func (h *CommandHook) RunOutput(ctx context.Context, ev Event) (string, error) {
	out, err := h.run(ctx, ev)
	return out.String(), err
}

// run is [CommandHook.RunOutput] with the output as captured.
func (h *CommandHook) run(ctx context.Context, ev Event) (output, error) {
	fail := func(out output, err error) (output, error) {
		return out, &commandError{Name: h.name, Argv: slices.Clone(h.argv), Output: out, Err: err}
	}
	if h.err != nil {
		return fail(output{}, h.err)
	}
	if len(h.argv) == 0 {
		return fail(output{}, errEmptyCommand)
	}

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if h.timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, h.timeout)
	}
	defer cancel()

	cmd := exec.CommandContext(runCtx, h.argv[0], h.argv[1:]...)
	cmd.Env = h.environ(ev)
	cmd.Dir = h.dir
	buf := &tailBuffer{limit: h.limit}
	// One writer for both streams: exec then uses a single pipe and a single
	// copying goroutine, so the interleaving is the command's own.
	cmd.Stdout, cmd.Stderr = buf, buf
	// Bound the wait for the output pipe to close: a background child holding
	// it open would otherwise block Wait until that child exits.
	cmd.WaitDelay = h.waitDelay
	if err := killGroupOnCancel(cmd); err != nil {
		return fail(output{}, err)
	}

	// os/exec calls cmd.Cancel only while the leader runs. Once the leader
	// has exited, a process it left in the group may hold the output open
	// through the wait delay, and a timeout or cancellation in that window
	// would kill nothing: so the group is also killed explicitly when runCtx
	// ends, whatever the leader's state, and once more after Wait.
	err := cmd.Start()
	var killed atomic.Bool
	if err == nil {
		pgid := cmd.Process.Pid
		stop := context.AfterFunc(runCtx, func() {
			killed.Store(true)
			_ = killGroup(pgid) // ESRCH: nothing left to kill
		})
		err = cmd.Wait()
		stop()
		if runCtx.Err() != nil {
			killed.Store(true)
			_ = killGroup(pgid)
		}
	}
	out := buf.captured()
	leaderOK := cmd.ProcessState != nil && cmd.ProcessState.Success()
	switch {
	case err == nil && !killed.Load():
		return out, nil
	case leaderOK && (err == nil || errors.Is(err, exec.ErrWaitDelay)):
		// The command exited with status 0, but something it started kept
		// the output open past the wait delay (its pipe was closed), or
		// until the timeout or ctx ended (its group was killed). The hook
		// did its work.
		out.Lingered = true
		return out, nil
	case runCtx.Err() != nil && cmd.Process == nil:
		return fail(out, fmt.Errorf("not started: %w", context.Cause(runCtx)))
	case ctx.Err() != nil:
		return fail(out, fmt.Errorf("interrupted, process group killed: %w", ctx.Err()))
	case runCtx.Err() != nil:
		return fail(out, timeoutError{h.timeout})
	case cmd.Process == nil:
		return fail(out, fmt.Errorf("start: %w", err))
	default:
		return fail(out, err)
	}
}

// environ builds the command's environment: inherited variables, extra
// variables, then the event's (later entries win in os/exec).
func (h *CommandHook) environ(ev Event) []string {
	env := make([]string, 0, 5+len(h.inherit)+len(h.env)+11)
	path, ok := os.LookupEnv("PATH")
	if !ok {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env = append(env, "PATH="+path)
	for _, names := range [][]string{{"HOME", "LANG", "LC_ALL", "TZ"}, h.inherit} {
		for _, k := range names {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	env = append(env, h.env...)
	return append(env, ev.Env()...)
}

// commandName derives a readable, unambiguous name from argv.
func commandName(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.IndexFunc(a, unsafeNameRune) >= 0 {
			a = strconv.Quote(a)
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}

func unsafeNameRune(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("@%+=:,./-_", r)
}

// output is what a command printed on its standard output and error,
// combined. It is a plain value.
type output struct {
	// Tail holds the last bytes printed, at most the hook's output limit.
	Tail []byte
	// Total is the number of bytes printed; Total > len(Tail) means the
	// beginning was dropped.
	Total int64
	// Lingered reports that the command exited with status 0 but a process it
	// started kept the output open past the wait delay, after which the pipe
	// was closed (that process gets EPIPE or SIGPIPE when it next writes), or
	// until the timeout expired or ctx ended, when the process group was
	// killed. The run still counts as a success.
	Lingered bool
}

// Truncated reports whether the beginning of the output was dropped.
func (o output) Truncated() bool { return o.Total > int64(len(o.Tail)) }

// String returns the kept output as text (invalid UTF-8 replaced), prefixed
// by a marker when the beginning was dropped.
func (o output) String() string {
	return o.tail(len(o.Tail))
}

// tail renders at most the last n kept bytes, with a marker for what is
// missing.
func (o output) tail(n int) string {
	b := o.Tail
	if len(b) > n {
		b = b[len(b)-n:]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if dropped := o.Total - int64(len(b)); dropped > 0 {
		s = "[… " + strconv.FormatInt(dropped, 10) + " earlier bytes omitted]\n" + s
	}
	return s
}

// commandError is the error of a failed [CommandHook] run. Err holds the
// cause; Output what the command printed. It is a plain value.
type commandError struct {
	// Name is the hook's name.
	Name string
	// Argv is the command line.
	Argv []string
	// Output is the captured output (empty if the command did not start).
	Output output
	// Err is the cause: see [CommandHook.RunOutput].
	Err error
}

// Error describes the failure, quoting at most the last 4 KiB of output,
// with credentials in it redacted (a failing `curl -v` prints its
// Authorization header): the message reaches logs, state.json and a
// readiness endpoint. Output keeps the raw bytes.
func (e *commandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hooks: command [%s]: %v", e.Name, e.Err)
	if e.Output.Total > 0 {
		out := redact(strings.TrimRight(e.Output.tail(errorOutputLimit), "\n"))
		fmt.Fprintf(&b, "; output (%d bytes):\n%s", e.Output.Total, out)
	}
	return b.String()
}

// brief is Error without the output: what is persisted.
func (e *commandError) brief() string {
	// The name last: redaction cuts a line short from a credential-like
	// part on, and a name may hold one (its argv).
	return fmt.Sprintf("hooks: command failed: %v; its output (%d bytes) is in the log of the run that ran it, not kept here; command [%s]", e.Err, e.Output.Total, e.Name)
}

// Unwrap returns Err.
func (e *commandError) Unwrap() error { return e.Err }

// timeoutError is the cause of a CommandHook's timeout.
type timeoutError struct{ d time.Duration }

func (e timeoutError) Error() string {
	return "timed out after " + e.d.String() + ", process group killed"
}

func (e timeoutError) Is(target error) bool {
	return target == errTimeout || target == context.DeadlineExceeded
}

// tailBuffer is an io.Writer keeping the last limit bytes written, in at most
// 2*limit bytes of memory. Not safe for concurrent use (os/exec serialises
// writes when Stdout == Stderr).
type tailBuffer struct {
	limit int
	buf   []byte
	total int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.total += int64(n)
	if b.limit <= 0 {
		return n, nil
	}
	if len(p) >= b.limit {
		b.buf = append(b.buf[:0], p[len(p)-b.limit:]...)
		return n, nil
	}
	if b.buf == nil {
		b.buf = make([]byte, 0, 2*b.limit)
	}
	if len(b.buf)+len(p) > cap(b.buf) {
		// Compact: keep what, together with p, makes the last limit bytes.
		keep := min(len(b.buf), b.limit-len(p))
		b.buf = b.buf[:copy(b.buf, b.buf[len(b.buf)-keep:])]
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) captured() output {
	tail := b.buf
	if len(tail) > b.limit {
		tail = tail[len(tail)-b.limit:]
	}
	return output{Tail: slices.Clone(tail), Total: b.total}
}
