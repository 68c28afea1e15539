package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newJournal returns an empty journal with a fixed clock.
var quiet = slog.New(slog.DiscardHandler)

func newJournal() *Journal { return &Journal{now: func() time.Time { return t0 }} }

func ev(gen int) Event {
	return Event{Lineage: "example", Dir: "/srv/example", Domains: []string{"example.com"}, Generation: gen,
		NotAfter: t0.Add(90 * 24 * time.Hour), Serial: fmt.Sprintf("%02x", gen)}
}

// recorder is a set of Func hooks that log their runs and fail on demand.
type recorder struct {
	runs []string          // "name@gen", in order
	fail map[string]int    // name → failures left
	ctx  map[string]func() // name → called while running
}

func (r *recorder) hook(name string) Hook {
	return Func(name, func(_ context.Context, ev Event) error {
		r.runs = append(r.runs, fmt.Sprintf("%s@%d", name, ev.Generation))
		if f := r.ctx[name]; f != nil {
			f()
		}
		if r.fail[name] > 0 {
			r.fail[name]--
			return fmt.Errorf("%s is broken", name)
		}
		return nil
	})
}

func (r *recorder) hooks(names ...string) []Hook {
	hs := make([]Hook, len(names))
	for i, n := range names {
		hs[i] = r.hook(n)
	}
	return hs
}

// logBuffer captures log records as JSON lines.
type logBuffer struct{ bytes.Buffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *logBuffer) count(level string) int {
	return strings.Count(b.String(), `"level":"`+level+`"`)
}

// pendingNames summarises j as "gen:name,name;gen:name".
func pendingNames(j *Journal) string {
	var parts []string
	for _, e := range j.Entries {
		parts = append(parts, fmt.Sprintf("%d:%s", e.Generation, strings.Join(e.names(), ",")))
	}
	return strings.Join(parts, ";")
}

func TestRecordRejects(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	tests := []struct {
		name    string
		ev      Event
		hooks   []Hook
		mention string
	}{
		{"generation zero", ev(0), r.hooks("a"), "generation 0 is not positive"},
		{"nil hook", ev(1), []Hook{r.hook("a"), nil}, "hook #2 is nil"},
		{"empty name", ev(1), []Hook{Func("", nil)}, "hook #1 has an empty name"},
		{"empty command", ev(1), []Hook{Command()}, "empty name"},
		{"duplicate names", ev(1), []Hook{Command("true"), r.hook("x"), Command("true")}, `hooks #1 and #3 are both named "true"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJournal()
			if err := j.Record(ev(9), r.hooks("keep"), nil); err != nil {
				t.Fatal(err)
			}
			before := pendingNames(j)
			err := j.Record(tt.ev, tt.hooks, nil)
			if err == nil || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Record: %v, want an error mentioning %q", err, tt.mention)
			}
			if got := pendingNames(j); got != before {
				t.Errorf("journal changed to %q", got)
			}
			if tt.ev.Generation > 0 && Validate(tt.hooks) == nil {
				t.Error("Validate accepted the hooks")
			}
		})
	}
}

func TestRecord(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	j := newJournal()
	if err := j.Record(ev(3), nil, nil); err != nil || len(j.Entries) != 0 {
		t.Fatalf("Record without hooks: %v, %+v", err, j.Entries)
	}
	for _, step := range []struct {
		gen   int
		hooks []string
	}{{5, []string{"a"}}, {3, []string{"a", "b"}}, {5, []string{"b", "a", "c"}}} {
		if err := j.Record(ev(step.gen), r.hooks(step.hooks...), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := pendingNames(j), "3:a,b;5:a,b,c"; got != want {
		t.Errorf("pending %q, want %q (sorted by generation, merged)", got, want)
	}
	if j.PendingCount() != 5 {
		t.Errorf("PendingCount() = %d", j.PendingCount())
	}
	if e := j.Entries[0]; !reflect.DeepEqual(e.Event, ev(3)) || !e.Recorded.Equal(t0) {
		t.Errorf("entry %+v", e)
	}
	if len(r.runs) != 0 {
		t.Errorf("Record ran hooks: %v", r.runs)
	}
}

func TestRecordCopiesEvent(t *testing.T) {
	t.Parallel()
	j := newJournal()
	e := ev(1)
	if err := j.Record(e, []Hook{Command("true")}, nil); err != nil {
		t.Fatal(err)
	}
	e.Domains[0] = "changed.example"
	if got := j.Entries[0].Event.Domains[0]; got != "example.com" {
		t.Errorf("journal shares the caller's Domains: %q", got)
	}
	p := j.Pending()
	p[0].Event.Domains[0] = "changed.example"
	p[0].Pending[0].Name = "changed"
	if j.Entries[0].Event.Domains[0] != "example.com" || j.Entries[0].Pending[0].Name != "true" {
		t.Error("Pending() shares memory with the journal")
	}
}

// TestJournalBounded: recording more than maxEntries generations drops the
// oldest, each with an error log.
func TestJournalBounded(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	j := newJournal()
	r := &recorder{}
	const extra = 3
	for gen := maxEntries + extra; gen >= 1; gen-- { // newest first: order must not matter
		if err := j.Record(ev(gen), r.hooks("a"), logs.logger()); err != nil {
			t.Fatal(err)
		}
	}
	if len(j.Entries) != maxEntries || j.Entries[0].Generation != extra+1 ||
		j.Entries[maxEntries-1].Generation != maxEntries+extra {
		t.Fatalf("journal holds %s", pendingNames(j))
	}
	// Each of generations 3, 2, 1 was recorded into a full journal and
	// dropped at once.
	if got := logs.count("ERROR"); got != extra {
		t.Errorf("%d error logs, want %d:\n%s", got, extra, logs.String())
	}
	if !strings.Contains(logs.String(), `"generation":1,`) {
		t.Errorf("the dropped generation is not logged:\n%s", logs.String())
	}
}

func TestReplay(t *testing.T) {
	t.Parallel()
	r := &recorder{fail: map[string]int{"b": 3}}
	hooks := r.hooks("a", "b", "c")
	j := newJournal()
	for _, gen := range []int{2, 1} {
		if err := j.Record(ev(gen), hooks, nil); err != nil {
			t.Fatal(err)
		}
	}
	var snapshots []string
	persist := func(pj *Journal) error {
		if pj != j {
			t.Error("persist called with another journal")
		}
		snapshots = append(snapshots, pendingNames(pj))
		return nil
	}
	var logs logBuffer

	err := j.Replay(t.Context(), hooks, persist, logs.logger())
	if got, want := strings.Join(r.runs, " "), "a@1 b@1 c@1 a@2 b@2 c@2"; got != want {
		t.Errorf("runs %q, want %q (oldest generation first, recorded order)", got, want)
	}
	// persisted after each success (the last one carries the failures too)
	if got, want := strings.Join(snapshots, " | "), "1:b,c;2:a,b,c | 1:b;2:a,b,c | 1:b;2:b,c | 1:b;2:b"; got != want {
		t.Errorf("persisted\n%s\nwant\n%s", got, want)
	}
	if err == nil {
		t.Fatal("Replay succeeded with a failing hook")
	}
	for _, s := range []string{`hook [b] of lineage "example" generation 1 failed (attempt 1): b is broken`, "generation 2"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if p := j.Entries[0].Pending[0]; p.Attempts != 1 || p.LastError != "b is broken" || !p.LastAttempt.Equal(t0) {
		t.Errorf("failed hook state %+v", p)
	}
	if got := logs.count("INFO"); got != 4 {
		t.Errorf("%d info logs, want one per success:\n%s", got, logs.String())
	}
	if logs.count("ERROR") != 0 {
		t.Errorf("failures logged as well as returned:\n%s", logs.String())
	}

	// Next run: b fails once more (gen 1), then succeeds (gen 2).
	r.runs, snapshots = nil, nil
	err = j.Replay(t.Context(), hooks, persist, quiet)
	if got := strings.Join(r.runs, " "); got != "b@1 b@2" || err == nil {
		t.Fatalf("second replay ran %q, err %v", got, err)
	}
	if got := pendingNames(j); got != "1:b" || j.Entries[0].Pending[0].Attempts != 2 {
		t.Fatalf("after second replay: %q, %+v", got, j.Entries[0].Pending)
	}

	r.runs, snapshots = nil, nil
	if err := j.Replay(t.Context(), hooks, persist, quiet); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snapshots, " | "); got != "" || len(j.Entries) != 0 {
		t.Errorf("after the last replay: snapshots %q, journal %+v", got, j.Entries)
	}

	r.runs = nil
	if err := j.Replay(t.Context(), hooks, persist, quiet); err != nil || r.runs != nil {
		t.Errorf("replaying an empty journal: %v, ran %v", err, r.runs)
	}
}

// Regression: a failing hook fixed in the configuration (a typo in its
// path gives it another name) was dropped as "no longer configured", and the
// generation already served never got its reload.
func TestReplayRunsFixedHookForServedGeneration(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	j := newJournal()
	if err := j.Record(ev(1), r.hooks("typo"), nil); err != nil {
		t.Fatal(err)
	}
	if err := j.Replay(t.Context(), r.hooks("fixed"), nil, quiet); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.runs, " "); got != "fixed@1" || j.PendingCount() != 0 {
		t.Fatalf("runs %q, pending %d", got, j.PendingCount())
	}
}

// TestReplayUnconfiguredHookAlreadyCovered: a pending hook no longer
// configured is replaced by the configured hooks not already pending; when
// they all are, it is simply dropped, with one warning naming it.
func TestReplayUnconfiguredHookAlreadyCovered(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	j := newJournal()
	if err := j.Record(ev(1), r.hooks("old", "a"), nil); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	persisted := 0
	err := j.Replay(t.Context(), r.hooks("a"), func(*Journal) error { persisted++; return nil }, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	if j.PendingCount() != 0 || persisted != 1 || strings.Join(r.runs, " ") != "a@1" {
		t.Errorf("pending %d, persisted %d, runs %v", j.PendingCount(), persisted, r.runs)
	}
	if logs.count("WARN") != 1 || !strings.Contains(logs.String(), `"hook":"old"`) {
		t.Errorf("want one warning naming the dropped hook:\n%s", logs.String())
	}
}

func TestReplayContextCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := &recorder{ctx: map[string]func(){"a": cancel}}
	hooks := r.hooks("a", "b")
	j := newJournal()
	for gen := 1; gen <= 2; gen++ {
		if err := j.Record(ev(gen), hooks, nil); err != nil {
			t.Fatal(err)
		}
	}
	var snapshots []string
	err := j.Replay(ctx, hooks, func(j *Journal) error { snapshots = append(snapshots, pendingNames(j)); return nil }, quiet)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "3 hook runs still pending") {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got := strings.Join(r.runs, " "); got != "a@1" {
		t.Errorf("runs %q: hooks ran after ctx ended", got)
	}
	if got := strings.Join(snapshots, " | "); got != "1:b;2:a,b" {
		t.Errorf("persisted %q, want the success before the cancellation", got)
	}
}

func TestReplayHookHonouringContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	j := newJournal()
	slow := Func("slow", func(ctx context.Context, _ Event) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	if err := j.Record(ev(1), []Hook{slow}, nil); err != nil {
		t.Fatal(err)
	}
	err := j.Replay(ctx, []Hook{slow}, nil, quiet)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if p := j.Entries[0].Pending[0]; p.Attempts != 0 || p.LastError != "" {
		t.Errorf("an interrupted run counted as a failed attempt: %+v", p)
	}
}

func TestReplayPanickingHook(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	hooks := []Hook{Func("bad", func(context.Context, Event) error { panic("boom") }), r.hook("good")}
	j := newJournal()
	if err := j.Record(ev(1), hooks, nil); err != nil {
		t.Fatal(err)
	}
	err := j.Replay(t.Context(), hooks, nil, quiet)
	if err == nil || !strings.Contains(err.Error(), `hook [bad] of lineage "example" generation 1 failed (attempt 1): panicked: boom`) {
		t.Fatalf("err = %v", err)
	}
	if pendingNames(j) != "1:bad" || len(r.runs) != 1 {
		t.Errorf("pending %q, runs %v", pendingNames(j), r.runs)
	}
}

func TestReplayPersistErrorDoesNotStopHooks(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	hooks := r.hooks("a", "b")
	j := newJournal()
	if err := j.Record(ev(1), hooks, nil); err != nil {
		t.Fatal(err)
	}
	diskFull := errors.New("disk full")
	err := j.Replay(t.Context(), hooks, func(*Journal) error { return diskFull }, quiet)
	if !errors.Is(err, diskFull) || !strings.Contains(err.Error(), "persisting the journal") {
		t.Fatalf("err = %v", err)
	}
	if len(r.runs) != 2 {
		t.Errorf("runs %v, want both hooks run", r.runs)
	}
}

func TestReplayDuplicateConfiguredNames(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	j := newJournal()
	if err := j.Record(ev(1), r.hooks("a", "b"), nil); err != nil {
		t.Fatal(err)
	}
	err := j.Replay(t.Context(), append(r.hooks("a", "b"), r.hook("a")), nil, quiet)
	if err == nil || !strings.Contains(err.Error(), "more than one configured hook") {
		t.Fatalf("err = %v", err)
	}
	if pendingNames(j) != "1:a" || strings.Join(r.runs, " ") != "b@1" {
		t.Errorf("pending %q runs %v", pendingNames(j), r.runs)
	}
}

func TestReplayLastErrorBounded(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 1<<20)
	h := Func("loud", func(context.Context, Event) error { return errors.New(huge) })
	j := newJournal()
	if err := j.Record(ev(1), []Hook{h}, nil); err != nil {
		t.Fatal(err)
	}
	_ = j.Replay(t.Context(), []Hook{h}, nil, quiet)
	if n := len(j.Entries[0].Pending[0].LastError); n > maxLastError+16 {
		t.Errorf("LastError is %d bytes", n)
	}
}

func TestJournalJSON(t *testing.T) {
	t.Parallel()
	r := &recorder{fail: map[string]int{"b": 1}}
	j := newJournal()
	if err := j.Record(ev(1), r.hooks("a", "b"), nil); err != nil {
		t.Fatal(err)
	}
	_ = j.Replay(t.Context(), r.hooks("a", "b"), nil, quiet)
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"entries":[{"generation":1,"event":{"lineage":"example","dir":"/srv/example","domains":["example.com"],"generation":1,"not_after":"2026-04-02T03:04:05Z","serial":"01"},"recorded":"2026-01-02T03:04:05Z","pending":[{"name":"b","attempts":1,"last_error":"b is broken","last_attempt":"2026-01-02T03:04:05Z"}]}]}`
	if string(data) != want {
		t.Errorf("JSON\n%s\nwant\n%s", data, want)
	}
	var back Journal
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Entries, j.Entries) {
		t.Errorf("round trip\n%+v\nwant\n%+v", back.Entries, j.Entries)
	}
	if data, _ := json.Marshal(&Journal{}); string(data) != "{}" {
		t.Errorf("empty journal marshals to %s", data)
	}

	// A journal decoded in another process replays with the stored event.
	r.runs = nil
	if err := back.Replay(t.Context(), r.hooks("a", "b"), nil, quiet); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.runs, " "); got != "b@1" {
		t.Errorf("replay of the decoded journal ran %q", got)
	}
}

// TestReplayRepairsHandEditedJournal: a state file edited by hand (entries
// out of order, a generation twice, empty and repeated names) is replayed
// sanely.
func TestReplayRepairsHandEditedJournal(t *testing.T) {
	t.Parallel()
	const data = `{"entries":[
		{"generation":5,"event":{"generation":5},"pending":[{"name":"a"},{"name":""},{"name":"a"}]},
		{"generation":2,"event":{"generation":2},"pending":[]},
		{"generation":3,"event":{"generation":3},"pending":[{"name":"b"}]},
		{"generation":3,"event":{"generation":3},"pending":[{"name":"a"},{"name":"b"}]}]}`
	var j Journal
	if err := json.Unmarshal([]byte(data), &j); err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	persisted := 0
	if err := j.Replay(t.Context(), r.hooks("a", "b"), func(*Journal) error { persisted++; return nil }, quiet); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.runs, " "); got != "b@3 a@3 a@5" {
		t.Errorf("runs %q", got)
	}
	if j.PendingCount() != 0 || persisted != 3 {
		t.Errorf("pending %d, persisted %d", j.PendingCount(), persisted)
	}
}

func FuzzJournalReplay(f *testing.F) {
	f.Add([]byte(`{"entries":[{"generation":1,"event":{"generation":1},"pending":[{"name":"a"},{"name":"b"},{"name":"gone"}]}]}`))
	f.Add([]byte(`{"entries":[{"generation":2,"pending":[{"name":"b"}]},{"generation":2,"pending":[{"name":"b","attempts":3}]},{"generation":-1,"pending":null}]}`))
	f.Add([]byte(`{"entries":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var j Journal
		if json.Unmarshal(data, &j) != nil {
			return
		}
		before := map[int]bool{}
		for _, e := range j.Entries {
			before[e.Generation] = true
		}
		r := &recorder{fail: map[string]int{"b": 1 << 30}}
		hooks := r.hooks("a", "b")
		err := j.Replay(context.Background(), hooks, func(pj *Journal) error {
			_, err := json.Marshal(pj)
			return err
		}, slog.New(slog.DiscardHandler))
		if err != nil && j.PendingCount() == 0 {
			t.Fatalf("error %v with nothing pending", err)
		}
		if len(j.Entries) > maxEntries {
			t.Fatalf("%d entries", len(j.Entries))
		}
		for i, e := range j.Entries {
			if i > 0 && j.Entries[i-1].Generation >= e.Generation {
				t.Fatalf("entries not strictly ordered: %s", pendingNames(&j))
			}
			if !before[e.Generation] {
				t.Fatalf("generation %d appeared", e.Generation)
			}
			if names := e.names(); !slices.Equal(names, []string{"b"}) {
				t.Fatalf("generation %d pending %v, want only the failing hook", e.Generation, names)
			}
			if e.Pending[0].Attempts < 1 {
				t.Fatalf("failed hook without an attempt: %+v", e.Pending[0])
			}
		}
	})
}

// TestReplayRedactsPersistedErrors: a failing curl -v printed its bearer
// token into the hook error, which state.json kept.
func TestReplayRedactsPersistedErrors(t *testing.T) {
	t.Parallel()
	out := "> GET /reload HTTP/1.1\n> Authorization: Bearer s3cr3t-tok.en\n< HTTP/1.1 500\n" +
		"retrying https://deploy:hunter2@example.net/x?token=abc123&x=1 with password=pw1 and api_key: \"k-9\""
	h := Func("curl", func(context.Context, Event) error { return errors.New(out) })
	j := newJournal()
	if err := j.Record(ev(1), []Hook{h}, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.Replay(t.Context(), []Hook{h}, func(*Journal) error { return nil }, quiet); err == nil {
		t.Fatal("Replay succeeded with a failing hook")
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cr3t-tok.en", "hunter2", "abc123", "pw1", "k-9"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("persisted journal holds %q:\n%s", secret, b)
		}
	}
	for _, kept := range []string{"HTTP/1.1 500", "example.net/x", "x=1", "[redacted]"} {
		if !strings.Contains(j.Entries[0].Pending[0].LastError, kept) {
			t.Errorf("LastError lost %q: %s", kept, j.Entries[0].Pending[0].LastError)
		}
	}
}
