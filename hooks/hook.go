package hooks

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
)

// Event describes one installed generation of a lineage. It is what a hook
// receives, and what the journal stores so that a later process can replay
// the hook with the same event.
//
// An Event is a plain value; hooks must treat Domains as read-only.
type Event struct {
	// Lineage is the lineage (certificate) name.
	Lineage string `json:"lineage"`
	// Dir is the lineage directory, holding the stable links cert.pem,
	// chain.pem, fullchain.pem, privkey.pem and combined.pem.
	Dir string `json:"dir"`
	// Domains are the certificate's identifiers, the primary name first.
	Domains []string `json:"domains,omitempty"`
	// Generation is the installed generation's sequence number (1, 2, 3…).
	Generation int `json:"generation"`
	// NotAfter is the certificate's expiry (zero if unknown).
	NotAfter time.Time `json:"not_after,omitzero"`
	// Serial is the certificate's serial number in hexadecimal (empty if
	// unknown).
	Serial string `json:"serial,omitempty"`
}

// Env returns the variables a [CommandHook] adds to its environment for ev,
// as KEY=VALUE strings in a fixed order:
//
//	RENEWED_LINEAGE     Dir (certbot-compatible)
//	RENEWED_DOMAINS     Domains separated by spaces (certbot-compatible)
//	RENEWKIT_NAME       Lineage
//	RENEWKIT_GENERATION Generation in decimal
//	RENEWKIT_NOT_AFTER  NotAfter in RFC 3339, UTC (empty when zero)
//	RENEWKIT_SERIAL     Serial
//	RENEWKIT_CERT       Dir/cert.pem       (these five are empty when Dir is)
//	RENEWKIT_CHAIN      Dir/chain.pem
//	RENEWKIT_FULLCHAIN  Dir/fullchain.pem
//	RENEWKIT_KEY        Dir/privkey.pem
//	RENEWKIT_COMBINED   Dir/combined.pem
//
// The paths are the lineage's stable links, which always resolve to the
// generation being served; a hook replayed late for generation N may find a
// newer generation there, which is what a reload wants.
func (ev Event) Env() []string {
	notAfter := ""
	if !ev.NotAfter.IsZero() {
		notAfter = ev.NotAfter.UTC().Format(time.RFC3339)
	}
	file := func(name string) string {
		if ev.Dir == "" {
			return ""
		}
		return filepath.Join(ev.Dir, name)
	}
	return []string{
		"RENEWED_LINEAGE=" + ev.Dir,
		"RENEWED_DOMAINS=" + strings.Join(ev.Domains, " "),
		"RENEWKIT_NAME=" + ev.Lineage,
		"RENEWKIT_GENERATION=" + strconv.Itoa(ev.Generation),
		"RENEWKIT_NOT_AFTER=" + notAfter,
		"RENEWKIT_SERIAL=" + ev.Serial,
		"RENEWKIT_CERT=" + file(atomicfs.CertFile),
		"RENEWKIT_CHAIN=" + file(atomicfs.ChainFile),
		"RENEWKIT_FULLCHAIN=" + file(atomicfs.FullchainFile),
		"RENEWKIT_KEY=" + file(atomicfs.KeyFile),
		"RENEWKIT_COMBINED=" + file(atomicfs.CombinedFile),
	}
}

// clone returns a copy of ev that shares no memory with it.
func (ev Event) clone() Event {
	ev.Domains = append([]string(nil), ev.Domains...)
	return ev
}

// Hook is a deploy hook, run after a generation is installed.
//
// Name identifies the hook in the pending-hook journal. It must be non-empty,
// unique among the hooks of a lineage, and stable across processes and
// restarts: a journal written by one process is replayed by another, which
// finds the hook to run by this name.
//
// Run must honour ctx, return nil only when the hook's work is done, and be
// idempotent: it runs at least once per installed generation, and again after
// a crash at the wrong moment. Implementations must be safe for concurrent
// use, since several lineages may run the same hook at once.
type Hook interface {
	Name() string
	Run(ctx context.Context, ev Event) error
}

// Func returns a Hook named name that calls f. The name is the journal key
// (see [Hook]); choose one that stays the same across releases.
//
// The returned Hook is safe for concurrent use if f is. A nil f makes Run
// return an error.
func Func(name string, f func(ctx context.Context, ev Event) error) Hook {
	return funcHook{name: name, f: f}
}

type funcHook struct {
	name string
	f    func(ctx context.Context, ev Event) error
}

func (h funcHook) Name() string { return h.name }

func (h funcHook) Run(ctx context.Context, ev Event) error {
	if h.f == nil {
		return fmt.Errorf("hooks: func %q: nil function", h.name)
	}
	return h.f(ctx, ev)
}

// Validate reports whether hooks can be journaled together: no nil hook,
// no empty name, no name used twice. [Journal.Record] performs the same
// check; calling Validate when loading a configuration reports the problem
// before any certificate is renewed.
func Validate(hooks []Hook) error {
	_, err := hookNames(hooks)
	return err
}

// hookNames returns the names of hooks in order, or an error naming the
// first problem.
func hookNames(hooks []Hook) ([]string, error) {
	names := make([]string, 0, len(hooks))
	seen := make(map[string]int, len(hooks))
	for i, h := range hooks {
		if h == nil {
			return nil, fmt.Errorf("hooks: hook #%d is nil", i+1)
		}
		name := h.Name()
		if name == "" {
			return nil, fmt.Errorf("hooks: hook #%d has an empty name (a Command with no arguments, or a Func without a name)", i+1)
		}
		if j, dup := seen[name]; dup {
			return nil, fmt.Errorf("hooks: hooks #%d and #%d are both named %q; names are journal keys and must be unique (use CommandHook.WithName)", j+1, i+1, name)
		}
		seen[name] = i
		names = append(names, name)
	}
	return names, nil
}

// errEmptyCommand is returned by a [CommandHook] built with no arguments.
var errEmptyCommand = errors.New("hooks: empty command")

// errTimeout is matched (with errors.Is) by the error of a [CommandHook]
// whose timeout expired; the error also matches context.DeadlineExceeded.
var errTimeout = errors.New("hooks: command timed out")

// Timeout returns the bound on one run of h: 2 minutes, or what
// [CommandHook.WithTimeout] set. Package renew derives from it how long a
// run may hold a lineage's lock.
func (h *CommandHook) Timeout() time.Duration { return h.timeout }
