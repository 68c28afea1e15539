package hooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/renewkit/renewkit/hooks"
)

// The journal's life for one new generation: record and persist before the
// swap, replay after it, and replay again on the next run for whatever
// failed.
func ExampleJournal() {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	var stateFile []byte // stands in for state.json, written atomically
	persist := func(j *hooks.Journal) error {
		data, err := json.Marshal(j)
		stateFile = data
		return err
	}

	cacheDown := true
	configured := []hooks.Hook{
		hooks.Func("reload-proxy", func(_ context.Context, ev hooks.Event) error {
			fmt.Printf("reload proxy for %s generation %d\n", ev.Lineage, ev.Generation)
			return nil
		}),
		hooks.Func("push-to-cache", func(context.Context, hooks.Event) error {
			if cacheDown {
				return errors.New("cache unreachable")
			}
			fmt.Println("pushed to cache")
			return nil
		}),
	}
	ev := hooks.Event{Lineage: "example", Dir: "/var/lib/renewkit/example",
		Domains: []string{"example.com"}, Generation: 42}

	// (1) record, (2) persist, (3) swap current to generation 42, (4) replay.
	var j hooks.Journal
	if err := j.Record(ev, configured, log); err != nil {
		fmt.Println(err)
		return
	}
	_ = persist(&j)
	err := j.Replay(ctx, configured, persist, log)
	fmt.Println("error:", err)
	fmt.Println("pending:", j.PendingCount())

	// The next run, in another process, loads the journal and replays.
	cacheDown = false
	var next hooks.Journal
	_ = json.Unmarshal(stateFile, &next)
	fmt.Println("error:", next.Replay(ctx, configured, persist, log))
	fmt.Println("pending:", next.PendingCount())
	// Output:
	// reload proxy for example generation 42
	// error: hooks: hook [push-to-cache] of lineage "example" generation 42 failed (attempt 1): cache unreachable
	// pending: 1
	// pushed to cache
	// error: <nil>
	// pending: 0
}

func ExampleJournal_Pending() {
	j := hooks.Journal{}
	_ = j.Record(hooks.Event{Lineage: "example", Generation: 7}, []hooks.Hook{hooks.Reload("nginx.service")}, nil)
	for _, e := range j.Pending() {
		for _, p := range e.Pending {
			fmt.Printf("%s generation %d: %s (failed %d times)\n", e.Event.Lineage, e.Generation, p.Name, p.Attempts)
		}
	}
	// Output:
	// example generation 7: systemctl try-reload-or-restart nginx.service (failed 0 times)
}

func ExampleEvent_Env() {
	ev := hooks.Event{
		Lineage:    "example",
		Dir:        "/var/lib/renewkit/example",
		Domains:    []string{"example.com", "www.example.com"},
		Generation: 3,
		NotAfter:   time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		Serial:     "03ab",
	}
	for _, kv := range ev.Env() {
		fmt.Println(kv)
	}
	// Output:
	// RENEWED_LINEAGE=/var/lib/renewkit/example
	// RENEWED_DOMAINS=example.com www.example.com
	// RENEWKIT_NAME=example
	// RENEWKIT_GENERATION=3
	// RENEWKIT_NOT_AFTER=2026-06-01T00:00:00Z
	// RENEWKIT_SERIAL=03ab
	// RENEWKIT_CERT=/var/lib/renewkit/example/cert.pem
	// RENEWKIT_CHAIN=/var/lib/renewkit/example/chain.pem
	// RENEWKIT_FULLCHAIN=/var/lib/renewkit/example/fullchain.pem
	// RENEWKIT_KEY=/var/lib/renewkit/example/privkey.pem
	// RENEWKIT_COMBINED=/var/lib/renewkit/example/combined.pem
}

func ExampleReload() {
	h := hooks.Reload("nginx.service").WithTimeout(30 * time.Second)
	fmt.Println(h.Name())
	fmt.Printf("%q\n", h.Argv())
	// Output:
	// systemctl try-reload-or-restart nginx.service
	// ["systemctl" "try-reload-or-restart" "nginx.service"]
}

func ExampleFunc() {
	h := hooks.Func("notify", func(_ context.Context, ev hooks.Event) error {
		fmt.Printf("%s now serves generation %d for %v\n", ev.Lineage, ev.Generation, ev.Domains)
		return nil
	})
	_ = h.Run(context.Background(), hooks.Event{Lineage: "example", Generation: 5, Domains: []string{"example.com"}})
	// Output:
	// example now serves generation 5 for [example.com]
}

func ExampleValidate() {
	err := hooks.Validate([]hooks.Hook{
		hooks.Command("/usr/local/bin/deploy", "--all"),
		hooks.Command("/usr/local/bin/deploy", "--all").WithEnv("TARGET=backup"),
	})
	fmt.Println(err)
	// Output:
	// hooks: hooks #1 and #2 are both named "/usr/local/bin/deploy --all"; names are journal keys and must be unique (use CommandHook.WithName)
}
