package crashtest_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
)

// countName labels the catch-all fault that counts every request no other
// fault hit (a zero delay: the request passes on to Pebble untouched).
const countName = "count"

// requests is the number of ACME requests the CA received so far.
func requests(ca *testacme.Server) int { return ca.FaultStats().Fired }

// faultCase is one CA misbehaviour and what a run must make of it.
type faultCase struct {
	name string
	// retry replaces the [retry] table (default: 3 retries, 1 ms → 10 ms).
	retry  string
	faults []testacme.Fault
	// code and outcome are the run's exit code and summary outcome.
	code    int
	outcome string
	// attempts is the exact number of in-run attempts (summary "attempts").
	attempts int
	// newOrders is the exact number of newOrder requests the CA received
	// (faulted or not).
	newOrders int
	// errs are substrings of the summary record's error.
	errs []string
	// backsOff: the next normal run must back off without a request, and
	// -status must show the not-before (matching notBefore when set).
	backsOff  bool
	notBefore *regexp.Regexp
	// check inspects the run further.
	check func(t *testing.T, r run)
	// long: skipped with -short.
	long bool
}

var faultCases = []faultCase{
	{
		// On every POST endpoint (a CA sends badNonce only to JWS requests).
		name:   "badNonce on 30% of requests",
		faults: badNonces(0.3),
		code:   0, outcome: "renewed",
	},
	{
		name:   "burst of 503 HTML pages on newOrder",
		faults: []testacme.Fault{{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultHTML, Status: 503, Count: 2}},
		code:   0, outcome: "renewed", attempts: 3, newOrders: 3,
	},
	{
		name:   "burst of 503 problem documents on newOrder",
		faults: []testacme.Fault{{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "serverInternal", Status: 503, Count: 2}},
		code:   0, outcome: "renewed", attempts: 3, newOrders: 3,
	},
	{
		name:   "503 for longer than the retry budget",
		faults: []testacme.Fault{{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "serverInternal", Status: 503}},
		code:   1, outcome: "failed", attempts: 4, newOrders: 4,
		errs:     []string{"new order", "serverInternal", "503"},
		backsOff: true,
	},
	{
		name:   "connection reset on newOrder",
		faults: []testacme.Fault{{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultReset, Count: 2}},
		code:   0, outcome: "renewed",
	},
	{
		// The finalize never reached the CA: the retry finalizes the
		// journaled order (still ready) with its key, not a second order.
		name:   "503 on finalize",
		faults: []testacme.Fault{{Endpoint: testacme.EndpointFinalize, Kind: testacme.FaultProblem, Problem: "serverInternal", Status: 503, Count: 1}},
		code:   0, outcome: "renewed", attempts: 2, newOrders: 1,
	},
	{
		name:   "connection reset on the certificate download, after finalize",
		faults: []testacme.Fault{{Endpoint: testacme.EndpointCertificate, Kind: testacme.FaultReset, Count: 1}},
		code:   0, outcome: "renewed", newOrders: 1,
	},
	{
		name: "rateLimited with Retry-After within the budget",
		// Waits of 700 ms, budget 1.4 s: a Retry-After of 1 s fits.
		retry:  "retries = 2\ninitial = \"700ms\"\nmultiplier = 1.0\nmax = \"700ms\"\njitter = 0.0",
		faults: []testacme.Fault{testacme.RateLimited(testacme.EndpointNewOrder, 1, time.Second)},
		code:   0, outcome: "renewed", attempts: 2, newOrders: 2,
		check: func(t *testing.T, r run) {
			waits := retryWaits(r.stderr)
			if len(waits) != 1 || waits[0] < time.Second {
				t.Errorf("want one retry no sooner than the Retry-After of 1s, got waits %v", waits)
			}
			if r.duration < time.Second {
				t.Errorf("the run retried before the Retry-After: it took %v", r.duration)
			}
		},
	},
	{
		name:   "rateLimited with Retry-After beyond the budget",
		faults: []testacme.Fault{testacme.RateLimited(testacme.EndpointNewOrder, 0, time.Hour)},
		code:   1, outcome: "failed", attempts: 1, newOrders: 1,
		errs:      []string{"rateLimited"},
		backsOff:  true,
		notBefore: regexp.MustCompile(`\(in (59m|1h)\)`),
		check: func(t *testing.T, r run) {
			rec := r.summaries()["www"]
			nb, _ := rec["retry_not_before"].(string)
			at, err := time.Parse(time.RFC3339Nano, nb)
			if err != nil || time.Until(at) < 59*time.Minute {
				t.Errorf("retry_not_before = %q, want about an hour from now (the Retry-After)", nb)
			}
		},
	},
	{
		name:   "a permanent problem (rejectedIdentifier)",
		faults: []testacme.Fault{{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "rejectedIdentifier", Status: 400}},
		code:   1, outcome: "failed", attempts: 1, newOrders: 1,
		errs:     []string{"rejectedIdentifier"},
		backsOff: true,
	},
	{
		// The CLI's request timeout is a fixed 30 s (no configuration key),
		// so this case takes that long; it runs beside the others.
		name:   "newOrder stalls past the client's request timeout",
		faults: []testacme.Fault{{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultStall, Count: 1}},
		code:   0, outcome: "renewed", attempts: 2, newOrders: 2,
		long: true,
	},
}

// badNonces returns a badNonce fault with probability p on each endpoint
// that takes a signed POST.
func badNonces(p float64) []testacme.Fault {
	var fs []testacme.Fault
	for _, ep := range []testacme.Endpoint{
		testacme.EndpointNewAccount, testacme.EndpointAccount, testacme.EndpointNewOrder, testacme.EndpointOrder,
		testacme.EndpointFinalize, testacme.EndpointAuthz, testacme.EndpointChallenge, testacme.EndpointCertificate,
	} {
		fs = append(fs, testacme.Fault{Endpoint: ep, Kind: testacme.FaultProblem, Problem: "badNonce", Probability: p})
	}
	return fs
}

// TestFaultyCA runs a first issuance against a CA that misbehaves in one
// way per case, and checks the outcome, its class and message, the number
// of attempts against the policy, and the cross-run backoff.
func TestFaultyCA(t *testing.T) {
	t.Parallel()
	type row struct{ name, outcome, detail string }
	rows := make([]row, len(faultCases))
	// All at once: the cases mostly wait (on retries, Retry-After, a stall).
	t.Run("cases", func(t *testing.T) {
		concurrently(t, len(faultCases), faultCases, func(tc faultCase) string { return tc.name },
			func(t *testing.T, i int, tc faultCase) {
				outcome, detail := faultCaseRun(t, tc)
				rows[i] = row{tc.name, outcome, detail}
			})
	})
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "FAULT\tOUTCOME\tDETAIL\n")
	for _, r := range rows {
		if r.name != "" { // skipped
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.name, r.outcome, r.detail)
		}
	}
	tw.Flush()
	t.Logf("a CA that fails:\n%s", b.String())
}

func faultCaseRun(t *testing.T, tc faultCase) (outcome, detail string) {
	if tc.long && testing.Short() {
		t.Skip("takes the CLI's 30 s request timeout: skipped with -short")
	}
	opts := caOptions()
	opts.FaultSeed = 8
	ca := testacme.New(t, opts)
	domains := []string{"faulty.example.test"}
	s := newSetup(t, ca, false, certSpec{name: "www", domains: domains})
	if tc.retry != "" {
		s.retry = tc.retry
		s.writeConfig()
	}
	for _, f := range tc.faults {
		ca.Inject(f)
	}
	ca.Inject(testacme.Fault{Name: countName, Endpoint: testacme.EndpointAny, Kind: testacme.FaultDelay})

	r := s.run(nil)
	rec := r.summaries()["www"]
	outcome, _ = rec["outcome"].(string)
	errText, _ := rec["error"].(string)
	attempts, _ := rec["attempts"].(float64)
	fs := ca.FaultStats()
	newOrders := ca.Stats(domains...).Orders
	for name, n := range fs.ByName {
		if strings.HasPrefix(name, "newOrder/") {
			newOrders += n
		}
	}
	detail = fmt.Sprintf("exit %d, %d attempts, %d newOrder requests, %d faults fired, %v", r.code, int(attempts), newOrders, fs.Fired-fs.ByName[countName], r.duration.Round(time.Millisecond))
	if errText != "" {
		detail += ": " + errText
	}

	if r.code != tc.code || outcome != tc.outcome {
		t.Fatalf("want exit %d and outcome %s, got %s:\n%v", tc.code, tc.outcome, outcome, r)
	}
	if tc.attempts > 0 && int(attempts) != tc.attempts {
		t.Errorf("%d attempts, want %d (retries + 1 = 4 at most)", int(attempts), tc.attempts)
	}
	if int(attempts) > 4 {
		t.Errorf("%d attempts: more than the policy's 3 retries allow", int(attempts))
	}
	if tc.newOrders > 0 && newOrders != tc.newOrders {
		t.Errorf("the CA received %d newOrder requests, want %d", newOrders, tc.newOrders)
	}
	for _, e := range tc.errs {
		if !strings.Contains(errText, e) {
			t.Errorf("the error %q does not mention %q", errText, e)
		}
	}
	if tc.check != nil {
		tc.check(t, r)
	}
	if tc.outcome == "renewed" {
		if _, err := served.Check(s.lineage("www")); err != nil {
			t.Errorf("renewed, but: %v", err)
		}
		if st := ca.Stats(domains...); st.Issued != 1 {
			t.Errorf("the CA issued %d certificates, want 1", st.Issued)
		}
	}
	if !tc.backsOff {
		return outcome, detail
	}

	// Across runs: the next run backs off without a request.
	before := requests(ca)
	r2 := s.run(nil)
	if o := r2.outcome("www"); o != "backing_off" || r2.code != 1 {
		t.Errorf("the run after the failure: want backing_off and exit 1, got %s:\n%v", o, r2)
	}
	if n := requests(ca) - before; n != 0 {
		t.Errorf("the backing-off run made %d requests to the CA", n)
	}
	// -status is a check: a certificate backing off needs attention (exit 1).
	st := s.run(nil, "-status")
	if st.code != 1 || !strings.Contains(st.stdout, "NOT BEFORE") || !strings.Contains(st.stdout, "(in ") ||
		!strings.Contains(st.stdout, "www: needs attention: backing off") {
		t.Errorf("-status does not show the not-before time and the backoff as needing attention (exit 1):\n%v", st)
	}
	if tc.notBefore != nil && !tc.notBefore.MatchString(st.stdout) {
		t.Errorf("-status does not show the not-before %v:\n%v", tc.notBefore, st)
	}
	detail += "; next run: " + r2.outcome("www") + ", 0 requests"
	return outcome, detail
}

// retryWaits returns the retry_in of the "issuance attempt failed" records
// of a JSON log.
func retryWaits(log string) []time.Duration {
	var out []time.Duration
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var rec struct {
			Msg     string  `json:"msg"`
			RetryIn float64 `json:"retry_in"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "issuance attempt failed" {
			out = append(out, time.Duration(rec.RetryIn*float64(time.Second))) // JSON durations are seconds
		}
	}
	return out
}
