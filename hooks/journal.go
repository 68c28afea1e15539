package hooks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/renewkit/renewkit/internal/textclip"
)

// maxEntries bounds the journal: when recording a generation would leave
// more than maxEntries generations with pending hooks, the oldest entries are
// dropped, with an error logged for each. Sixteen failed deployments in a
// row is far beyond anything an operator should leave unattended, and older
// entries only re-deploy superseded certificates.
const maxEntries = 16

// maxLastError bounds PendingHook.LastError in the persisted journal.
const maxLastError = 1 << 10

// Journal is the pending-hook journal of one lineage: which hooks of which
// installed generations have not succeeded yet. It is a JSON value meant to
// be embedded in the lineage's state file; the zero value is an empty
// journal. See the package documentation for the sequence that makes hooks
// survive crashes.
//
// A Journal is not safe for concurrent use; callers hold the lineage lock
// while they use it, and while its persist callback writes it.
type Journal struct {
	// Entries are ordered by ascending generation, one per generation.
	Entries []Entry `json:"entries,omitempty"`

	// now is the clock; nil means time.Now. A test seam.
	now func() time.Time
	// crash, when set, is called at named points of Replay. A test seam for
	// crash tests; nil in production.
	crash func(point string)
}

// Entry is the journal entry of one installed generation. It is a plain
// value.
type Entry struct {
	// Generation is the generation's sequence number (Event.Generation).
	Generation int `json:"generation"`
	// Event is passed to the hooks when they are replayed.
	Event Event `json:"event"`
	// Recorded is when the entry was first recorded.
	Recorded time.Time `json:"recorded,omitzero"`
	// Pending are the hooks that have not succeeded for this generation, in
	// the order they run.
	Pending []PendingHook `json:"pending"`
}

// PendingHook is a hook that has not succeeded yet for a generation. It is a
// plain value.
type PendingHook struct {
	// Name is the hook's name (its journal key).
	Name string `json:"name"`
	// Attempts counts the failed runs so far.
	Attempts int `json:"attempts,omitempty"`
	// LastError is the last failure's message, without the hook's output
	// (a command's output can hold secrets no pattern recognises, and
	// state.json is shown by status tools and readiness endpoints: the
	// output goes to the log of the run only), with what looks like a
	// credential (an Authorization header, a bearer token, "password=…",
	// "user:pass@" in a URL) replaced by "[redacted]", and shortened to
	// about 1 KiB: it is persisted.
	LastError string `json:"last_error,omitempty"`
	// LastAttempt is when the last failed run ended.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
}

func (j *Journal) clock() time.Time {
	if j.now != nil {
		return j.now()
	}
	return time.Now()
}

func (j *Journal) crashPoint(point, hook string) {
	if j.crash != nil {
		j.crash(point + " " + hook)
	}
}

// Record notes that ev's generation is installed (or about to be) with hooks
// pending; call it, and persist the journal, before switching the served
// files to the generation. Recording a generation already in the journal
// adds the hooks that are not pending yet and keeps the stored event.
//
// Record returns an error and leaves j unchanged when ev.Generation is not
// positive or hooks fail [Validate]. With no hooks it does nothing. When the
// journal then holds more than [maxEntries] entries, the oldest are dropped
// and logged at error level to log (nil: [slog.Default]); that is not an
// error, since the new generation is what must be deployed.
func (j *Journal) Record(ev Event, hooks []Hook, log *slog.Logger) error {
	if ev.Generation < 1 {
		return fmt.Errorf("hooks: recording lineage %q: generation %d is not positive", ev.Lineage, ev.Generation)
	}
	names, err := hookNames(hooks)
	if err != nil {
		return fmt.Errorf("hooks: recording lineage %q generation %d: %w", ev.Lineage, ev.Generation, err)
	}
	if len(names) == 0 {
		return nil
	}
	i, found := slices.BinarySearchFunc(j.Entries, ev.Generation, func(e Entry, gen int) int {
		return cmp.Compare(e.Generation, gen)
	})
	if !found {
		j.Entries = slices.Insert(j.Entries, i, Entry{
			Generation: ev.Generation,
			Event:      ev.clone(),
			Recorded:   j.clock(),
		})
	}
	e := &j.Entries[i]
	for _, name := range names {
		if !slices.ContainsFunc(e.Pending, func(p PendingHook) bool { return p.Name == name }) {
			e.Pending = append(e.Pending, PendingHook{Name: name})
		}
	}
	j.normalize(logger(log))
	return nil
}

// Replay runs the pending hooks: entries oldest generation first, and within
// an entry in recorded order, each with the entry's stored [Event]. It runs
// every pending hook even when others fail.
//
// After each success the hook is removed from the journal (an entry with
// nothing pending is removed too) and persist is called with j, so a crash
// re-runs at most the hook that was running. A failure increments the hook's
// attempt count and records its error; the hook stays pending for the next
// Replay. A pending name that none of hooks has (the configuration changed,
// or a broken hook was fixed under another name) is replaced, with a
// warning, by the configured hooks not already pending for that generation,
// so a generation already served still gets its reload. When anything but a success changed j, persist
// is called once more at the end. A nil persist keeps the journal in memory
// only, which defeats its purpose outside tests.
//
// Replay stops early, leaving the rest pending, when ctx ends. It logs
// successes and dropped entries to log (nil: [slog.Default]) and returns
// the failures joined (errors.Join): each names the hook, the lineage and
// the generation, and wraps the hook's error; persist errors are included,
// and do not stop the hooks from running. Failures are not logged, so that
// the caller logs the returned error once.
//
// A hook that panics is reported as a failure, so one bad hook cannot crash
// every run that replays it.
func (j *Journal) Replay(ctx context.Context, hooks []Hook, persist func(*Journal) error, log *slog.Logger) error {
	log = logger(log)
	byName := make(map[string]Hook, len(hooks))
	dup := make(map[string]bool)
	for _, h := range hooks {
		if h == nil {
			continue
		}
		if _, ok := byName[h.Name()]; ok {
			dup[h.Name()] = true
		}
		byName[h.Name()] = h
	}

	var errs []error
	dirty := j.normalize(log)
	if j.retarget(hooks, byName, log) {
		dirty = true
	}
	save := func() {
		dirty = false
		if persist == nil {
			return
		}
		if err := persist(j); err != nil {
			errs = append(errs, fmt.Errorf("hooks: persisting the journal: %w", err))
		}
	}

	// The work list is fixed up front; each item is looked up again before
	// it runs because earlier items remove entries.
	type item struct {
		gen  int
		name string
	}
	var work []item
	for _, e := range j.Entries {
		for _, p := range e.Pending {
			work = append(work, item{e.Generation, p.Name})
		}
	}

	for _, it := range work {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("hooks: replay interrupted, %d hook runs still pending: %w", j.PendingCount(), err))
			break
		}
		ei, pi := j.find(it.gen, it.name)
		if ei < 0 {
			continue
		}
		ev := j.Entries[ei].Event
		attrs := []any{"hook", it.name, "lineage", ev.Lineage, "generation", it.gen}
		// retarget left only configured names pending.
		h := byName[it.name]
		if dup[it.name] {
			errs = append(errs, fmt.Errorf("hooks: hook [%s] of lineage %q generation %d: more than one configured hook has this name; not run", it.name, ev.Lineage, it.gen))
			continue
		}

		j.crashPoint("before-run", it.name)
		start := j.clock()
		out, err := runHook(ctx, h, ev.clone())
		if err != nil {
			if ctx.Err() != nil {
				// Not the hook's fault: do not count an attempt.
				errs = append(errs, fmt.Errorf("hooks: hook [%s] of lineage %q generation %d: %w", it.name, ev.Lineage, it.gen, err))
				continue
			}
			p := &j.Entries[ei].Pending[pi]
			p.Attempts++
			p.LastError = textclip.Ends(redact(persistedError(err)), maxLastError)
			p.LastAttempt = j.clock()
			dirty = true
			errs = append(errs, fmt.Errorf("hooks: hook [%s] of lineage %q generation %d failed (attempt %d): %w", it.name, ev.Lineage, it.gen, p.Attempts, err))
			continue
		}
		j.crashPoint("after-run", it.name)
		log.Info("hooks: hook succeeded", append(attrs, "duration", j.clock().Sub(start))...)
		if out.Total > 0 {
			log.Debug("hooks: hook output", append(attrs, "output", redact(out.String()))...)
		}
		if out.Lingered {
			log.Warn("hooks: a process started by the hook kept its output open; the pipe was closed", attrs...)
		}
		j.remove(ei, pi)
		save()
		j.crashPoint("after-persist", it.name)
	}
	if dirty {
		save()
	}
	return errors.Join(errs...)
}

// runHook runs h, returning its output when it has any, and turns a panic
// into an error.
func runHook(ctx context.Context, h Hook, ev Event) (out output, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panicked: %v", r)
		}
	}()
	if c, ok := h.(interface {
		run(context.Context, Event) (output, error)
	}); ok {
		return c.run(ctx, ev)
	}
	return output{}, h.Run(ctx, ev)
}

// Pending returns a copy of the journal's entries, for status output.
func (j *Journal) Pending() []Entry {
	out := make([]Entry, len(j.Entries))
	for i, e := range j.Entries {
		e.Event = e.Event.clone()
		e.Pending = slices.Clone(e.Pending)
		out[i] = e
	}
	return out
}

// retarget replaces, in every entry, pending hooks that are no longer
// configured by the configured hooks not already pending there. A hook
// renamed or fixed in the configuration (say, a typo in its path) must
// still run for a generation already served, or the server would keep the
// old certificate until the next renewal; running all configured hooks for
// that generation is safe because hooks are idempotent. It reports whether
// j changed.
func (j *Journal) retarget(hooks []Hook, byName map[string]Hook, log *slog.Logger) bool {
	changed := false
	for ei := range j.Entries {
		e := &j.Entries[ei]
		stale := false
		kept := e.Pending[:0]
		pending := make(map[string]bool, len(e.Pending))
		for _, p := range e.Pending {
			if _, ok := byName[p.Name]; !ok {
				stale = true
				log.Warn("hooks: pending hook is no longer configured; running the configured hooks for its generation instead",
					"hook", p.Name, "lineage", e.Event.Lineage, "generation", e.Generation)
				continue
			}
			pending[p.Name] = true
			kept = append(kept, p)
		}
		e.Pending = kept
		if !stale {
			continue
		}
		changed = true
		for _, h := range hooks {
			if h != nil && !pending[h.Name()] {
				pending[h.Name()] = true
				e.Pending = append(e.Pending, PendingHook{Name: h.Name()})
			}
		}
	}
	if changed {
		// An entry whose hooks were all removed from the configuration has
		// nothing left to run.
		j.Entries = slices.DeleteFunc(j.Entries, func(e Entry) bool { return len(e.Pending) == 0 })
	}
	return changed
}

// PendingCount returns the number of pending hook runs, summed over all
// generations.
func (j *Journal) PendingCount() int {
	n := 0
	for _, e := range j.Entries {
		n += len(e.Pending)
	}
	return n
}

// find returns the indexes of the pending hook name of generation gen, or
// -1, -1.
func (j *Journal) find(gen int, name string) (int, int) {
	for ei, e := range j.Entries {
		if e.Generation != gen {
			continue
		}
		for pi, p := range e.Pending {
			if p.Name == name {
				return ei, pi
			}
		}
	}
	return -1, -1
}

// remove deletes a pending hook, and its entry when nothing else is pending.
func (j *Journal) remove(ei, pi int) {
	e := &j.Entries[ei]
	e.Pending = slices.Delete(e.Pending, pi, pi+1)
	if len(e.Pending) == 0 {
		j.Entries = slices.Delete(j.Entries, ei, ei+1)
	}
}

// normalize repairs what a hand-edited or corrupted state file may hold —
// entries out of order, a generation twice, empty or repeated names, empty
// entries — and enforces maxEntries. It reports whether j changed.
func (j *Journal) normalize(log *slog.Logger) bool {
	changed := false
	if !slices.IsSortedFunc(j.Entries, compareEntries) {
		slices.SortStableFunc(j.Entries, compareEntries)
		changed = true
	}
	out := j.Entries[:0]
	for _, e := range j.Entries {
		if n := len(out); n > 0 && out[n-1].Generation == e.Generation {
			out[n-1].Pending = append(out[n-1].Pending, e.Pending...)
			changed = true
		} else {
			out = append(out, e)
		}
	}
	clear(j.Entries[len(out):])
	j.Entries = out
	for i := range j.Entries {
		e := &j.Entries[i]
		seen := make(map[string]bool, len(e.Pending))
		n := len(e.Pending)
		e.Pending = slices.DeleteFunc(e.Pending, func(p PendingHook) bool {
			drop := p.Name == "" || seen[p.Name]
			seen[p.Name] = true
			return drop
		})
		changed = changed || len(e.Pending) != n
	}
	n := len(j.Entries)
	j.Entries = slices.DeleteFunc(j.Entries, func(e Entry) bool { return len(e.Pending) == 0 })
	changed = changed || len(j.Entries) != n
	if over := len(j.Entries) - maxEntries; over > 0 {
		for _, e := range j.Entries[:over] {
			log.Error("hooks: journal full, dropping the oldest generation's pending hooks; they will not run",
				"lineage", e.Event.Lineage, "generation", e.Generation, "pending", e.names(), "max_entries", maxEntries)
		}
		j.Entries = slices.Delete(j.Entries, 0, over)
		changed = true
	}
	return changed
}

func compareEntries(a, b Entry) int { return cmp.Compare(a.Generation, b.Generation) }

func (e Entry) names() []string {
	names := make([]string, len(e.Pending))
	for i, p := range e.Pending {
		names[i] = p.Name
	}
	return names
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

// clip shortens s to about n bytes, keeping its head and tail.
// secretPatterns match the credentials that commonly show up in a failing
// command's output: HTTP authorization headers (curl -v), bearer tokens,
// key=value and key: value secrets, and passwords in URLs. Group 1 is kept,
// the rest replaced.
var secretPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)(\b(?:proxy-)?authorization\s*:\s*)[^\r\n]*`),
	regexp.MustCompile(`(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+`),
	regexp.MustCompile(`(?i)(\b[a-z0-9_-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)["']?\s*[=:]\s*["']?)[^\s"'&,;]+`),
	regexp.MustCompile(`(://)[^/\s:@]+:[^/\s@]+@`),
}

// redact replaces what looks like a credential in s (an Authorization
// header, a bearer token, "password=…", "token: …", "user:pass@" in a URL)
// with "[redacted]". It is applied to hook errors before they are persisted:
// a verbose curl in a failing hook prints its bearer token. It is a
// heuristic, not a guarantee; state.json is also readable by its owner only.
func redact(s string) string {
	for _, re := range secretPatterns {
		s = re.ReplaceAllString(s, "${1}[redacted]")
	}
	return s
}

// persistedError is err's message for the journal: a command's output is
// left out (its size is kept, and where to find it).
func persistedError(err error) string {
	msg := err.Error()
	if ce, ok := errors.AsType[*commandError](err); ok && ce.Output.Total > 0 {
		msg = strings.Replace(msg, ce.Error(), ce.brief(), 1)
	}
	return msg
}
