package crashtest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/internal/etcdtest"
	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
)

// The fleet suite runs several renew-certificates processes as the nodes of
// one fleet: each node has its own storage root, configuration and deploy
// hook log, and all share a [fleet] section naming one etcd cluster (in this
// process, internal/etcdtest), one key prefix and one seal key. They talk to
// one test CA, which validates every challenge (AlwaysValid): a node that
// takes the fleet lock orders without having to own the CA's one http-01
// port. The nodes share one ACME account directory, as the nodes of a fleet
// share one account: a node that finishes another node's journaled order
// must be allowed to fetch it (an order belongs to the account that placed
// it).

// fleetFull reports whether the long variants run (RENEWKIT_FLEET_FULL=1).
func fleetFull() bool { return os.Getenv("RENEWKIT_FLEET_FULL") == "1" }

// fleetCount is def, or full under RENEWKIT_FLEET_FULL=1.
func fleetCount(def, full int) int {
	if fleetFull() {
		return full
	}
	return def
}

// fleetOptions describe a fleet of CLI nodes.
type fleetOptions struct {
	// nodes is the number of nodes, named n0, n1, …
	nodes int
	// lockTTL is [fleet] lock_ttl (default 2 s: a killed holder's lock
	// expires quickly).
	lockTTL time.Duration
	// requestTimeout is [fleet] request_timeout (default: the CLI's, 5 s).
	// A test of an etcd outage may make it short, so that the nodes give
	// up quickly; any other test needs etcd to answer within it whatever
	// the load: with 1 s, the etcd members in this process (race-checked)
	// missed it on a loaded 2-core machine, and runs were deferred.
	requestTimeout time.Duration
	// certs are the configured certificates (default: one, "www").
	certs []certSpec
	// ownAccounts gives each node an ACME account of its own instead of
	// the fleet's shared one.
	ownAccounts bool
}

// fleetEnv is a fleet of CLI nodes on one etcd cluster and one CA.
type fleetEnv struct {
	t       *testing.T
	ca      *testacme.Server
	etcd    *etcdtest.Cluster
	dir     string
	prefix  string
	sealKey string
	account string
	opts    fleetOptions
	nodes   []*fleetNode
	// client is the test's own view of the fleet's records.
	client *fleet.Client
	// raw writes what no node would (bad records).
	raw *clientv3.Client
}

// fleetNode is one node: a setup (root, configuration, hook log) whose
// configuration has the fleet's [fleet] section.
type fleetNode struct {
	*setup
	name string
}

// newFleet makes the nodes of a fleet on the etcd cluster cl (a prefix of
// their own, so that tests can share a cluster) with a new CA.
func newFleet(t *testing.T, cl *etcdtest.Cluster, opts fleetOptions) *fleetEnv {
	t.Helper()
	if opts.lockTTL == 0 {
		opts.lockTTL = 2 * time.Second
	}
	if opts.requestTimeout == 0 {
		opts.requestTimeout = fleet.DefaultRequestTimeout
	}
	if len(opts.certs) == 0 {
		opts.certs = []certSpec{{name: "www", domains: []string{"www.fleet.example.test", "fleet.example.test"}}}
	}
	caOpts := caOptions()
	caOpts.AlwaysValid = true
	dir := t.TempDir()
	e := &fleetEnv{
		t: t, ca: testacme.New(t, caOpts), etcd: cl, dir: dir, opts: opts,
		prefix:  "/crashtest/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "/",
		sealKey: writeFleetSealKey(t, dir, "seal.key", 1),
		account: filepath.Join(dir, "account"),
	}
	for i := range opts.nodes {
		n := &fleetNode{setup: newSetup(t, e.ca, true, opts.certs...), name: fmt.Sprintf("n%d", i)}
		if !opts.ownAccounts {
			n.account = e.account
		}
		n.top = e.fleetTOML(n.name)
		n.writeConfig()
		e.nodes = append(e.nodes, n)
	}
	c, err := fleet.Dial(fleet.Config{
		Endpoints: cl.Endpoints(), Prefix: e.prefix, Node: "observer", SealKeyFile: e.sealKey,
		DialTimeout: 2 * time.Second, RequestTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e.client = c
	raw, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	e.raw = raw
	return e
}

// writeFleetSealKey writes a seal key file (64 hex digits, mode 0600) made
// from seed and returns its path.
func writeFleetSealKey(t testing.TB, dir, name string, seed byte) string {
	t.Helper()
	key := make([]byte, fleet.SealKeySize)
	for i := range key {
		key[i] = seed + byte(i)*13
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, fmt.Appendf(nil, "%x\n", key), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fleetTOML is the [fleet] and [serve] sections of node's configuration.
func (e *fleetEnv) fleetTOML(node string) string {
	eps := make([]string, 0, len(e.etcd.Endpoints()))
	for _, ep := range e.etcd.Endpoints() {
		eps = append(eps, strconv.Quote(ep))
	}
	return fmt.Sprintf(`
[fleet]
endpoints = [%s]
prefix = %q
seal_key_file = %q
node = %q
lock_ttl = %q
request_timeout = %q

[serve]
listen = "127.0.0.1:0"
`, strings.Join(eps, ", "), e.prefix, e.sealKey, node, e.opts.lockTTL.String(), e.opts.requestTimeout.String())
}

// lineage is the fleet.Lineage of the configured certificate named name.
func (e *fleetEnv) lineage(name string) fleet.Lineage {
	for _, c := range e.opts.certs {
		if c.name == name {
			return fleet.Lineage{Name: c.name, Domains: c.domains}
		}
	}
	e.t.Fatalf("no certificate %q", name)
	return fleet.Lineage{}
}

// domains are the names of the first configured certificate.
func (e *fleetEnv) domains() []string { return e.opts.certs[0].domains }

// orders and issued count the CA's orders and certificates for the first
// configured certificate.
func (e *fleetEnv) orders() int { return e.ca.Stats(e.domains()...).Orders }
func (e *fleetEnv) issued() int { return e.ca.Stats(e.domains()...).Issued }

// state reads the fleet's state of the lineage name (with quorum).
func (e *fleetEnv) state(name string) *fleet.State {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := e.client.ReadStates(ctx, e.lineage(name))
	if err != nil {
		e.t.Fatalf("reading the fleet state of %s: %v", name, err)
	}
	return snap.States[name]
}

// fleetSerial is the serial of the fleet's current generation of name ("" if
// none) and its number.
func (e *fleetEnv) fleetSerial(name string) (string, int64) {
	e.t.Helper()
	st := e.state(name)
	if st.Err != nil {
		e.t.Fatalf("the fleet's record of %s: %v", name, st.Err)
	}
	if st.Meta == nil {
		return "", 0
	}
	return st.Meta.Serial, st.Meta.Number
}

// waitState watches the fleet's records of name until cond holds for its
// state (checked first, then after every change of the lineage), failing
// the test after limit. It waits on etcd's watch, never on a timer. (The
// watch does not report a lock being taken, only released: cond must not
// wait for a holder.)
func (e *fleetEnv) waitState(name, what string, limit time.Duration, cond func(*fleet.State) bool) *fleet.State {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		// Watch first: it starts from the revision current when it
		// returns, so no change after the read below is missed.
		wctx, wcancel := context.WithCancel(ctx)
		changes := e.client.Watch(wctx)
		read := func() *fleet.State {
			for {
				snap, err := e.client.ReadStates(ctx, e.lineage(name))
				if err == nil {
					return snap.States[name]
				}
				// A cluster that just got its quorum back may answer
				// unavailable for a moment (each try takes the
				// request timeout: no busy loop).
				if !errors.Is(err, fleet.ErrUnavailable) || ctx.Err() != nil {
					wcancel()
					e.t.Fatalf("waiting for %s: reading the fleet state: %v", what, err)
				}
			}
		}
		if st := read(); cond(st) {
			wcancel()
			return st
		}
		for lineage := range changes {
			if lineage != name {
				continue
			}
			if st := read(); cond(st) {
				wcancel()
				return st
			}
		}
		wcancel()
		if ctx.Err() != nil {
			e.t.Fatalf("%s: not within %v", what, limit)
		}
		// The watch failed: read again, watch again.
	}
}

// waitUnlocked waits until nobody holds the fleet lock of name: a killed or
// paused holder's lease has expired.
func (e *fleetEnv) waitUnlocked(name string) {
	e.t.Helper()
	start := time.Now()
	e.waitState(name, "the fleet lock of "+name+" released", 60*time.Second, func(st *fleet.State) bool { return st.Holder == "" })
	e.t.Logf("fleet lock of %s free after %v", name, time.Since(start).Round(time.Millisecond))
}

// key is the etcd key of a lineage's record (the layout in package fleet's
// documentation).
func (e *fleetEnv) key(name string, kind fleet.Kind) string {
	return e.prefix + "v1/state/" + name + "/" + string(kind)
}

// bundleKey is the etcd key of a lineage's current generation.
func (e *fleetEnv) bundleKey(name string) string { return e.prefix + "v1/bundle/" + name }

// runNodes runs the CLI on the given nodes at once, with args(i) as the
// arguments of nodes[i], and returns their runs in that order.
func runNodes(nodes []*fleetNode, args func(i int) []string, env func(i int) []string) []run {
	runs := make([]run, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		var a, v []string
		if args != nil {
			a = args(i)
		}
		if env != nil {
			v = env(i)
		}
		wg.Go(func() { runs[i] = n.run(v, a...) })
	}
	wg.Wait()
	return runs
}

// servedSerial checks that the node serves one whole generation of name and
// returns its serial ("" and a problem if not).
func (n *fleetNode) servedSerial(name string) (string, error) {
	snap, err := served.Check(n.lineage(name))
	if err != nil {
		return "", fmt.Errorf("node %s: %w", n.name, err)
	}
	return snap.Serial, nil
}

// mustServe fails the test unless every node serves serial as one whole
// generation of name.
func (e *fleetEnv) mustServe(name, serial string, nodes ...*fleetNode) {
	e.t.Helper()
	if nodes == nil {
		nodes = e.nodes
	}
	for _, n := range nodes {
		got, err := n.servedSerial(name)
		if err != nil {
			e.t.Errorf("%v", err)
			continue
		}
		if got != serial {
			e.t.Errorf("node %s serves serial %s, want %s", n.name, got, serial)
		}
	}
}

// form has the first node issue the fleet's first generation of "www" and
// every other node install it, and returns its serial and number.
func (e *fleetEnv) form() (string, int64) {
	e.t.Helper()
	if r := e.nodes[0].mustRun(0); r.outcome("www") != "renewed" {
		e.t.Fatalf("first issuance: %v", r)
	}
	e.mustInstall("installing the first generation", e.nodes[1:]...)
	serial, gen := e.fleetSerial("www")
	e.mustServe("www", serial)
	return serial, gen
}

// mustInstall runs each node in turn, wanting each to install the fleet's
// generation of "www" (outcome recovered, exit 0); what says when.
func (e *fleetEnv) mustInstall(what string, nodes ...*fleetNode) {
	e.t.Helper()
	for _, n := range nodes {
		if r := n.run(nil); r.code != 0 || r.outcome("www") != "recovered" {
			e.t.Errorf("node %s %s: want exit 0 and recovered, got %v", n.name, what, r)
		}
	}
}

// hooksRan fails the test unless each node's deploy hook ran, finding the
// served files whole, for each of serials.
func (e *fleetEnv) hooksRan(serials []string, nodes ...*fleetNode) {
	e.t.Helper()
	if nodes == nil {
		nodes = e.nodes
	}
	for _, n := range nodes {
		got := n.reloads() // fails on a "bad" verdict
		var missing []string
		for _, s := range serials {
			if got[s] == 0 {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			e.t.Errorf("node %s: the deploy hook never ran for serials %v (it ran for %v)", n.name, missing, got)
		}
	}
}

// watchServed reads combined.pem of name on each node, as HAProxy does,
// every 10 ms (etcd shares this process: its 500 ms election timeout must
// not starve), until the returned stop is called, which
// fails the test if any read found it missing, partial or mismatched
// (combined.pem cannot straddle a swap) and returns the number of reads.
// Each node must serve name already.
func (e *fleetEnv) watchServed(name string, nodes []*fleetNode) (stop func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	tallies := make([]served.Tally, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { tallies[i] = served.Watch(ctx, n.lineage(name), served.Combined, 10*time.Millisecond) })
	}
	return func() int {
		e.t.Helper()
		cancel()
		wg.Wait()
		reads := 0
		for i, t := range tallies {
			reads += t.Reads
			if t.Inconsistent() > 0 {
				e.t.Errorf("node %s: %d of %d reads of combined.pem were not one whole generation; the first: %v", nodes[i].name, t.Inconsistent(), t.Reads, t.FirstError)
			}
		}
		return reads
	}
}

// fenceOrRefusal reports whether a log names a refused fleet write.
func fenceOrRefusal(log string) bool {
	for _, s := range []string{"fenced", "lock lost", "not newer"} {
		if strings.Contains(log, s) {
			return true
		}
	}
	return false
}

// logRecord is one JSON record of a node's log.
type logRecord struct {
	Time time.Time
	Msg  string
	Raw  map[string]any
}

// str returns the string attribute k of the record.
func (r logRecord) str(k string) string {
	s, _ := r.Raw[k].(string)
	return s
}

// serveNode is a node running renew-certificates -serve.
type serveNode struct {
	node *fleetNode
	cmd  *exec.Cmd
	// records receives the node's log records in order; closed when the
	// process closes its stderr.
	records chan logRecord
	mu      sync.Mutex
	lines   []string // everything it logged, for failure messages
}

// startServe starts node with -serve. It is stopped (SIGTERM, by PID) and
// waited for in the test's cleanup unless stopped before.
func (e *fleetEnv) startServe(n *fleetNode) *serveNode {
	e.t.Helper()
	cmd := n.command(context.Background(), nil, "-serve")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s -serve: %v", n.name, err)
	}
	s := &serveNode{node: n, cmd: cmd, records: make(chan logRecord, 1024)}
	go s.read(stderr)
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill() // our own child, by PID
			_ = cmd.Wait()
		}
	})
	return s
}

// read parses the node's JSON log lines into records.
func (s *serveNode) read(r io.Reader) {
	defer close(s.records)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
		var raw map[string]any
		if json.Unmarshal([]byte(line), &raw) != nil {
			continue
		}
		rec := logRecord{Raw: raw}
		rec.Msg, _ = raw["msg"].(string)
		if ts, ok := raw["time"].(string); ok {
			rec.Time, _ = time.Parse(time.RFC3339Nano, ts)
		}
		s.records <- rec
	}
}

// log returns what the node logged so far.
func (s *serveNode) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// next reads the node's records until one satisfies match and returns it,
// or an error after limit or when the node's log ends. A record at level
// ERROR is reported as a test error on the way.
func (s *serveNode) next(t testing.TB, what string, limit time.Duration, match func(logRecord) bool) (logRecord, error) {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case rec, ok := <-s.records:
			if !ok {
				return logRecord{}, fmt.Errorf("node %s: its log ended before %s:\n%s", s.node.name, what, s.log())
			}
			if rec.str("level") == "ERROR" {
				t.Errorf("node %s logged an error: %v", s.node.name, rec.Raw)
			}
			if match(rec) {
				return rec, nil
			}
		case <-timer.C:
			return logRecord{}, fmt.Errorf("node %s: no %s within %v:\n%s", s.node.name, what, limit, s.log())
		}
	}
}

// waitRecord is next reporting its error as a test error (it may run on any
// goroutine: it does not stop the test); it returns false after one.
func (s *serveNode) waitRecord(t testing.TB, what string, limit time.Duration, match func(logRecord) bool) (logRecord, bool) {
	t.Helper()
	rec, err := s.next(t, what, limit, match)
	if err != nil {
		t.Error(err)
		return logRecord{}, false
	}
	return rec, true
}

// waitInstalled waits for the node's "installed" record of serial and returns
// when it was logged (false after an error: see waitRecord).
func (s *serveNode) waitInstalled(t testing.TB, serial string) (time.Time, bool) {
	t.Helper()
	rec, ok := s.waitRecord(t, "install of serial "+serial, 60*time.Second, func(r logRecord) bool {
		return r.Msg == "installed" && r.str("serial") == serial
	})
	return rec.Time, ok
}

// stop sends SIGTERM by PID and waits for a clean exit.
func (s *serveNode) stop(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("node %s: SIGTERM: %v", s.node.name, err)
	}
	// Drain the log so that the process never blocks writing it.
	go func() {
		for range s.records {
		}
	}()
	if err := s.cmd.Wait(); err != nil {
		t.Errorf("node %s -serve did not exit cleanly after SIGTERM: %v\n%s", s.node.name, err, s.log())
	}
}

// quantile returns the q-quantile (0 ≤ q ≤ 1) of ds by the nearest-rank
// method.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// fleetFigure logs a figure of the fleet suite and, when
// RENEWKIT_FLEET_FIGURES names a file, appends it there for the README.
func fleetFigure(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	t.Logf("FIGURE %s", msg)
	path := os.Getenv("RENEWKIT_FLEET_FIGURES")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Errorf("RENEWKIT_FLEET_FIGURES: %v", err)
		return
	}
	_, err = fmt.Fprintf(f, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), t.Name(), msg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Errorf("RENEWKIT_FLEET_FIGURES: %v", err)
	}
}
