package testacme

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Endpoint names a group of ACME requests a [Fault] applies to.
type Endpoint string

// Endpoints. EndpointAny matches every request to the ACME listener.
const (
	EndpointAny         Endpoint = "any"
	EndpointDirectory   Endpoint = "directory"   // GET /dir
	EndpointNewNonce    Endpoint = "newNonce"    // HEAD/GET /nonce-plz
	EndpointNewAccount  Endpoint = "newAccount"  // POST /sign-me-up
	EndpointAccount     Endpoint = "account"     // POST /my-account/<id>
	EndpointNewOrder    Endpoint = "newOrder"    // POST /order-plz
	EndpointOrder       Endpoint = "order"       // POST-as-GET /my-order/<id> (order polls)
	EndpointFinalize    Endpoint = "finalize"    // POST /finalize-order/<id>
	EndpointAuthz       Endpoint = "authz"       // POST /authZ/<id> (fetch, poll, deactivate)
	EndpointChallenge   Endpoint = "challenge"   // POST /chalZ/<id> (start validation or poll)
	EndpointCertificate Endpoint = "certificate" // POST-as-GET /certZ/<serial> (download)
	EndpointRenewalInfo Endpoint = "renewalInfo" // GET …/renewalInfo/<certID> (ARI)
	EndpointRevoke      Endpoint = "revokeCert"  // POST /revoke-cert
	EndpointKeyChange   Endpoint = "keyChange"   // POST /rollover-account-key
	EndpointOrders      Endpoint = "orders"      // POST /list-orderz/<account>
)

// Pebble's routes (wfe package constants, unexported there).
var routes = []struct {
	prefix string
	ep     Endpoint
}{
	{"/dir", EndpointDirectory},
	{"/nonce-plz", EndpointNewNonce},
	{"/sign-me-up", EndpointNewAccount},
	{"/my-account/", EndpointAccount},
	{"/order-plz", EndpointNewOrder},
	{"/my-order/", EndpointOrder},
	{"/finalize-order/", EndpointFinalize},
	{"/authZ/", EndpointAuthz},
	{"/chalZ/", EndpointChallenge},
	{"/certZ/", EndpointCertificate},
	{"/revoke-cert", EndpointRevoke},
	{"/rollover-account-key", EndpointKeyChange},
	{"/list-orderz/", EndpointOrders},
	{"/draft-ietf-acme-ari-03/renewalInfo/", EndpointRenewalInfo},
}

// classify returns the endpoint of path and the resource ID after the
// route's prefix ("" for routes without one). Unknown paths give "".
func classify(path string) (Endpoint, string) {
	for _, r := range routes {
		if rest, ok := strings.CutPrefix(path, r.prefix); ok {
			return r.ep, rest
		}
	}
	return "", ""
}

// Kind is what a [Fault] does to a matching request.
type Kind int

// Fault kinds.
const (
	// FaultProblem answers with an ACME problem document (Fault.Problem,
	// Fault.Status, Fault.Detail, Fault.RetryAfter) without calling Pebble. A
	// POST gets a fresh, valid Replay-Nonce, as from a real server.
	FaultProblem Kind = iota + 1
	// FaultHTML answers with an HTML error page, as a proxy in front of a CA
	// would: Fault.Status (default 503), Content-Type text/html, no nonce.
	FaultHTML
	// FaultReset takes the connection over and closes it with a TCP reset
	// before any response byte.
	FaultReset
	// FaultDelay waits Fault.Delay, or until Fault.Release is closed when
	// it is set (or until the client gives up or the server closes), then
	// passes the request on to Pebble.
	FaultDelay
	// FaultStall never answers: the request is held until the client gives
	// up (its context ends or its timeout closes the connection) or the
	// server closes.
	FaultStall
	// FaultBody answers Fault.Status (default 200) with Content-Type
	// application/json and a body of Fault.BodySize spaces (JSON
	// whitespace), or an endless one when BodySize is negative: streamed
	// until the client gives up or the server closes. The bytes sent are
	// counted in FaultStats.BodyBytes.
	FaultBody
	// FaultPendingError makes a challenge look failed but left pending, as
	// step-ca reports a validation that failed (RFC 8555 §8.2 has the
	// server retry in state "processing" instead). On EndpointChallenge, a
	// request that starts a validation is answered, without reaching
	// Pebble, with the challenge in status "pending" carrying an error of
	// type Fault.Problem (default "connection") and Fault.Detail; a poll
	// (POST-as-GET) passes. On EndpointAuthz, Pebble's answer is rewritten:
	// the authorization and its challenges are "pending", each challenge
	// carrying that error.
	FaultPendingError
)

func (k Kind) String() string {
	switch k {
	case FaultProblem:
		return "problem"
	case FaultHTML:
		return "html"
	case FaultReset:
		return "reset"
	case FaultDelay:
		return "delay"
	case FaultStall:
		return "stall"
	case FaultBody:
		return "body"
	case FaultPendingError:
		return "pending-error"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Fault describes a failure the server injects in front of Pebble. A
// request matches when its endpoint equals Endpoint (or Endpoint is
// EndpointAny); a matching request is hit with chance Probability; each hit
// uses one of Count. The first active fault (in Inject order) that hits a
// request decides it; requests no fault hits reach Pebble unchanged.
type Fault struct {
	// Name labels the fault in [FaultStats]. Empty: "<endpoint>/<kind>"
	// (with the problem type for FaultProblem, e.g. "newOrder/badNonce").
	Name string

	Endpoint Endpoint
	Kind     Kind

	// Count is the number of hits after which the fault is spent (removed).
	// Zero: it stays until the remove func is called.
	Count int
	// Probability is the chance (0 < p < 1) that a matching request is hit.
	// 0 or ≥ 1: every matching request is. Decisions come from the server's
	// seeded source (Options.FaultSeed).
	Probability float64

	// Problem is the ACME problem type of FaultProblem and
	// FaultPendingError: a short name ("badNonce", "rateLimited",
	// "serverInternal", ...) or a full URN. Empty: "serverInternal"
	// (FaultProblem), "connection" (FaultPendingError).
	Problem string
	// Status is the HTTP status. Zero: 400 for badNonce and malformed, 429
	// for rateLimited, 409 for alreadyReplaced, 403 for unauthorized, 500
	// otherwise (FaultProblem); 503 (FaultHTML).
	Status int
	// Detail is the problem's detail text. Empty: one naming the fault.
	Detail string
	// RetryAfter, when positive, adds a Retry-After header in whole seconds
	// (rounded up) to FaultProblem and FaultHTML responses.
	RetryAfter time.Duration

	// Delay is how long FaultDelay waits before passing the request on.
	// Zero with Release set: no limit.
	Delay time.Duration
	// Release, when set, passes a request FaultDelay holds on to Pebble as
	// soon as it is closed: a test holds a client inside a request (say,
	// finalize) for as long as it needs, and lets it go at an instant of
	// its choosing.
	Release <-chan struct{}

	// BodySize is the size of a FaultBody body (negative: endless) and, for
	// FaultHTML, the size the page is padded to (zero: a short page).
	BodySize int64
}

// BadNonce returns a fault answering the next n requests to ep with 400
// badNonce (lego retries those by itself).
func BadNonce(ep Endpoint, n int) Fault {
	return Fault{Endpoint: ep, Kind: FaultProblem, Problem: "badNonce", Count: n}
}

// RateLimited returns a fault answering the next n requests to ep with 429
// rateLimited and a Retry-After of retryAfter.
func RateLimited(ep Endpoint, n int, retryAfter time.Duration) Fault {
	return Fault{Endpoint: ep, Kind: FaultProblem, Problem: "rateLimited", Count: n, RetryAfter: retryAfter}
}

// ServerInternal returns a fault answering the next n requests to ep with
// 500 serverInternal.
func ServerInternal(ep Endpoint, n int) Fault {
	return Fault{Endpoint: ep, Kind: FaultProblem, Problem: "serverInternal", Count: n}
}

const problemPrefix = "urn:ietf:params:acme:error:"

func (f *Fault) problemType() string {
	p := f.Problem
	if p == "" {
		p = "serverInternal"
		if f.Kind == FaultPendingError {
			p = "connection"
		}
	}
	if !strings.HasPrefix(p, "urn:") {
		p = problemPrefix + p
	}
	return p
}

func (f *Fault) status() int {
	if f.Status != 0 {
		return f.Status
	}
	switch f.Kind {
	case FaultHTML:
		return 503
	case FaultBody:
		return 200
	}
	switch strings.TrimPrefix(f.problemType(), problemPrefix) {
	case "badNonce", "malformed", "badCSR", "invalidProfile":
		return 400
	case "unauthorized":
		return 403
	case "alreadyReplaced":
		return 409
	case "rateLimited":
		return 429
	default:
		return 500
	}
}

func (f *Fault) retryAfterSeconds() int {
	return int(math.Ceil(f.RetryAfter.Seconds()))
}

func (f *Fault) label() string {
	if f.Name != "" {
		return f.Name
	}
	ep := f.Endpoint
	if ep == "" {
		ep = EndpointAny
	}
	if f.Kind == FaultProblem || f.Kind == FaultPendingError {
		return string(ep) + "/" + strings.TrimPrefix(f.problemType(), problemPrefix)
	}
	return string(ep) + "/" + f.Kind.String()
}

// FaultStats counts the faults that fired.
type FaultStats struct {
	// Fired is the number of requests any fault hit, removed faults included.
	Fired int
	// ByName is Fired per fault label (Fault.Name or its default).
	ByName map[string]int
	// BodyBytes is the number of body bytes FaultBody and FaultHTML
	// responses wrote.
	BodyBytes int64
}

type activeFault struct {
	f       Fault
	left    int // hits left; meaningful when f.Count > 0
	removed bool
}

// faultSet holds the injected faults. One mutex guards the list, the
// counters and the random source (math/rand/v2 sources are not safe for
// concurrent use).
type faultSet struct {
	mu     sync.Mutex
	rnd    *rand.Rand
	active []*activeFault
	fired  int
	byName map[string]int
	body   int64
}

func newFaultSet(seed uint64) *faultSet {
	return &faultSet{rnd: newRand(seed), byName: make(map[string]int)}
}

// Inject adds a fault and returns a func that removes it (idempotent; a spent
// fault is already gone). It may be called at any time, also while requests
// are in flight; it does nothing after Close.
func (s *Server) Inject(f Fault) (remove func()) {
	if f.Kind < FaultProblem || f.Kind > FaultPendingError {
		f.Kind = FaultProblem
	}
	if f.Endpoint == "" {
		f.Endpoint = EndpointAny
	}
	a := &activeFault{f: f, left: f.Count}
	fs := s.faults
	fs.mu.Lock()
	fs.active = append(fs.active, a)
	fs.mu.Unlock()
	return func() {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		fs.removeLocked(a)
	}
}

func (fs *faultSet) removeLocked(a *activeFault) {
	if a.removed {
		return
	}
	a.removed = true
	for i, b := range fs.active {
		if b == a {
			fs.active = append(fs.active[:i:i], fs.active[i+1:]...)
			return
		}
	}
}

// pick returns the fault that hits a request to ep, if any, and counts it.
func (fs *faultSet) pick(ep Endpoint) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, a := range fs.active {
		if a.f.Endpoint != EndpointAny && a.f.Endpoint != ep {
			continue
		}
		if p := a.f.Probability; p > 0 && p < 1 && fs.rnd.Float64() >= p {
			continue
		}
		if a.f.Count > 0 {
			a.left--
			if a.left <= 0 {
				fs.removeLocked(a)
			}
		}
		fs.fired++
		fs.byName[a.f.label()]++
		return a.f, true
	}
	return Fault{}, false
}

// FaultStats returns how many requests the injected faults hit so far.
func (s *Server) FaultStats() FaultStats {
	fs := s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return FaultStats{Fired: fs.fired, ByName: maps.Clone(fs.byName), BodyBytes: fs.body}
}

// addBody counts n body bytes written by a fault.
func (fs *faultSet) addBody(n int) {
	fs.mu.Lock()
	fs.body += int64(n)
	fs.mu.Unlock()
}
