package acmeissuer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/lockfile"
	"github.com/renewkit/renewkit/renew"
)

// recordLocks serialises the use of DNS-01 record names: at most one
// challenge value is presented under a name at a time, by this Issuer and —
// with a lock directory — by every Issuer and process sharing that
// directory. Many DNS providers replace the whole TXT record set when they
// present a value (lego's rfc2136 does), so two writers on one name would
// wipe each other's value. Safe for concurrent use.
type recordLocks struct {
	dir string // "" : in-process only
	// maxWait bounds the wait for another process's record lock (0: no
	// bound): a holder that is stopped or frozen must not block every
	// other run on this machine for ever.
	maxWait time.Duration

	mu   sync.Mutex
	sems map[string]*recordSem // held or waited-for names only
}

type recordSem struct {
	ch   chan struct{} // a token in it = held
	refs int           // holders and waiters
}

// lock takes the locks of names (DNS-01 record FQDNs) in sorted order —
// the same order everywhere, so that two orders sharing several names never
// deadlock — waiting while another challenge holds one. The returned unlock
// releases them all and is idempotent. With ctx ended, lock returns an error
// matching ctx.Err(); a lock file that cannot be created or locked is a
// *renew.LocalError.
func (l *recordLocks) lock(ctx context.Context, names []string, log *slog.Logger) (unlock func(), err error) {
	keys := make([]string, 0, len(names))
	for _, n := range names {
		keys = append(keys, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)

	var releases []func()
	releaseAll := func() {
		for _, f := range slices.Backward(releases) {
			f()
		}
		releases = nil
	}
	for _, k := range keys {
		rel, err := l.lockOne(ctx, k, log)
		if err != nil {
			releaseAll()
			return nil, err
		}
		releases = append(releases, rel)
	}
	var once sync.Once
	return func() { once.Do(releaseAll) }, nil
}

// lockOne takes the in-process lock of name, then its lock file.
func (l *recordLocks) lockOne(ctx context.Context, name string, log *slog.Logger) (func(), error) {
	l.mu.Lock()
	if l.sems == nil {
		l.sems = make(map[string]*recordSem)
	}
	s := l.sems[name]
	if s == nil {
		s = &recordSem{ch: make(chan struct{}, 1)}
		l.sems[name] = s
	}
	s.refs++
	l.mu.Unlock()
	drop := func() {
		l.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(l.sems, name)
		}
		l.mu.Unlock()
	}

	select {
	case s.ch <- struct{}{}:
	default:
		log.Info("waiting for another challenge of this process using the same DNS-01 record", "record", name)
		select {
		case s.ch <- struct{}{}:
		case <-ctx.Done():
			drop()
			return nil, ctx.Err()
		}
	}
	release := func() {
		<-s.ch
		drop()
	}
	if l.dir == "" {
		return release, nil
	}

	fl, err := l.lockFile(ctx, name, log)
	if err != nil {
		release()
		return nil, err
	}
	return func() {
		if err := fl.Unlock(); err != nil {
			log.Warn("unlock DNS-01 record lock", "path", fl.Path(), "error", err)
		}
		release()
	}, nil
}

// lockFile takes DIR/<name>.lock, waiting while another process holds it.
func (l *recordLocks) lockFile(ctx context.Context, name string, log *slog.Logger) (*lockfile.Lock, error) {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, &renew.LocalError{What: "DNS-01 record lock directory " + l.dir, Err: err, Fix: "make DNS01.LockDir a directory the renewing user can write"}
	}
	path := filepath.Join(l.dir, recordLockName(name))
	fl, err := lockfile.TryLock(path)
	if held := err; errors.Is(held, lockfile.ErrLocked) {
		log.Info("waiting for another process presenting the same DNS-01 record", "record", name, "holder", held.Error())
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if l.maxWait > 0 {
			wctx, cancel = context.WithTimeout(ctx, l.maxWait)
		}
		fl, err = lockfile.Acquire(wctx, path)
		cancel()
		if err != nil && ctx.Err() == nil && wctx.Err() != nil {
			return nil, backoff.Transient(fmt.Errorf("DNS-01 record %s: waited %v for another process (%w); it may be stopped or stuck: ps -o pid,stat,lstart -p PID", name, l.maxWait, held))
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &renew.LocalError{What: "DNS-01 record lock " + path, Err: err, Fix: "make DNS01.LockDir a directory the renewing user can write"}
	}
	return fl, nil
}

// recordLockName is the lock file name for a record name (lower case, no
// trailing dot): the name itself plus ".lock" when it is a plain host name,
// else a hash of it, so that no name can escape the directory.
func recordLockName(name string) string {
	plain := name != "" && name[0] != '.' && !strings.Contains(name, "..")
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			plain = false
			break
		}
	}
	if plain && len(name) <= 250 {
		return name + ".lock"
	}
	sum := sha256.Sum256([]byte(name))
	return "sha256-" + hex.EncodeToString(sum[:16]) + ".lock"
}

// ourValues remembers the TXT values this Issuer presented, live and
// recently withdrawn (the last maxRecentValues), so that a propagation
// failure can say whether a value found in the way is one of ours. Safe for
// concurrent use.
type ourValues struct {
	mu     sync.Mutex
	live   map[string]string // value → description
	recent []ourValue        // withdrawn, newest last, at most maxRecentValues
}

type ourValue struct{ value, desc string }

const maxRecentValues = 32

func (o *ourValues) add(value, desc string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.live == nil {
		o.live = make(map[string]string)
	}
	o.live[value] = desc
}

func (o *ourValues) remove(value string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	desc, ok := o.live[value]
	if !ok {
		return
	}
	delete(o.live, value)
	o.recent = append(o.recent, ourValue{value, desc})
	if len(o.recent) > maxRecentValues {
		o.recent = slices.Delete(o.recent, 0, len(o.recent)-maxRecentValues)
	}
}

// describe says whose value v is, or "" when it is not one of ours.
func (o *ourValues) describe(v string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d, ok := o.live[v]; ok {
		return "ours: " + d + ", presented now"
	}
	for _, r := range slices.Backward(o.recent) {
		if r.value == v {
			return "ours: " + r.desc + ", already withdrawn"
		}
	}
	return ""
}

// describeOthers renders the values found instead of the expected one.
func describeOthers(vals []string, ours func(string) string) string {
	parts := make([]string, 0, len(vals))
	for _, v := range vals {
		d := "not one of this issuer's challenges: another process or client, or a leftover record"
		if ours != nil {
			if o := ours(v); o != "" {
				d = o
			}
		}
		parts = append(parts, fmt.Sprintf("%q (%s)", v, d))
	}
	return strings.Join(parts, ", ")
}
