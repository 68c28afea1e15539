package testacme

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Stats counts what the CA did for one identifier set, or for all of them.
//
// An order is in flight from the arrival of the newOrder request that
// created it until the arrival of the last request that concerned it (to
// its order, finalize, authorization, challenge or certificate URL). Only
// what a client does counts, so an order abandoned by a killed client stops
// counting at its last request (not when Pebble would expire it a day
// later, nor when an issuance it started ends), while an order that a later
// process resumes counts until that process is done with it. Two orders are
// concurrent when their in-flight intervals overlap; for sequential clients
// they never do.
type Stats struct {
	// Orders is the number of orders Pebble created (newOrder answered 201).
	Orders int
	// Replacing is how many of those carried ARI's `replaces`.
	Replacing int
	// Issued is the number of certificates issued (finalizations that
	// produced a certificate).
	Issued int
	// MaxConcurrentOrders is the largest number of orders in flight at one
	// instant (see above).
	MaxConcurrentOrders int
}

// Finalization is the arrival of one finalize request at the CA.
type Finalization struct {
	// Order is the order's ID (the last element of its URL).
	Order string
	// Identifiers is the order's identifier set in canonical form
	// (lower-cased, sorted, without duplicates); nil for an order the
	// server does not know.
	Identifiers []string
	// Seq is what Options.Sequence returned at the arrival (0 without it).
	Seq int64
	// Arrived is when the request arrived.
	Arrived time.Time
}

type orderRec struct {
	key           string // identifier set
	created, last time.Time
	replaces      bool
	issued        bool
}

// accounting records orders and which resource IDs belong to which order.
type accounting struct {
	mu     sync.Mutex
	orders map[string]*orderRec // order ID →
	owner  map[string]string    // "a:"+authz, "c:"+challenge, "z:"+certificate ID → order ID
	// finals are the finalize requests in the order they arrived.
	finals []Finalization
}

func newAccounting() *accounting {
	return &accounting{orders: make(map[string]*orderRec), owner: make(map[string]string)}
}

// identifierKey is the canonical form of an identifier set: lower-cased,
// deduplicated, sorted, joined with ",".
func identifierKey(names []string) string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ",")
}

func (a *accounting) addOrder(id string, names []string, replaces bool, authzs, chals []string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.orders[id] = &orderRec{key: identifierKey(names), created: now, last: now, replaces: replaces}
	for _, z := range authzs {
		a.owner["a:"+z] = id
	}
	for _, c := range chals {
		a.owner["c:"+c] = id
	}
}

// orderOf maps a request to the order it concerns ("" if none known).
func (a *accounting) orderOf(ep Endpoint, id string) string {
	switch ep {
	case EndpointOrder, EndpointFinalize:
		return id
	case EndpointAuthz:
		return a.lookup("a:" + id)
	case EndpointChallenge:
		return a.lookup("c:" + id)
	case EndpointCertificate:
		serial, _, _ := strings.Cut(id, "/")
		return a.lookup("z:" + serial)
	}
	return ""
}

func (a *accounting) lookup(k string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.owner[k]
}

func (a *accounting) touch(orderID string, now time.Time) {
	if orderID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if o := a.orders[orderID]; o != nil && now.After(o.last) {
		o.last = now
	}
}

// finalizeArrived records a finalize request for the order.
func (a *accounting) finalizeArrived(orderID string, seq int64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := Finalization{Order: orderID, Seq: seq, Arrived: now}
	if o := a.orders[orderID]; o != nil {
		f.Identifiers = strings.Split(o.key, ",")
	}
	a.finals = append(a.finals, f)
}

// Finalizations returns the finalize requests that arrived for orders of
// the identifier set domains (order and case do not matter), or for every
// order when domains is empty, in the order they arrived: every request,
// whether Pebble accepted it, refused it, or an injected fault answered it.
// A client that sent a finalize request may have started an issuance; a
// client that never did cannot have.
func (s *Server) Finalizations(domains ...string) []Finalization {
	key, all := identifierKey(domains), len(domains) == 0
	a := s.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Finalization
	for _, f := range a.finals {
		if all || strings.Join(f.Identifiers, ",") == key {
			f.Identifiers = slices.Clone(f.Identifiers)
			out = append(out, f)
		}
	}
	return out
}

// issued marks the order's certificate issued; counted once per order.
func (a *accounting) issued(orderID, certID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.orders[orderID]
	if o == nil {
		return
	}
	o.issued = true
	a.owner["z:"+certID] = orderID
}

func (a *accounting) isIssued(orderID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.orders[orderID]
	return o != nil && o.issued
}

// Stats returns the counters for the identifier set domains (order and case
// do not matter, "*.example.com" is its own identifier), or totals over all
// orders when domains is empty. For totals, MaxConcurrentOrders counts all
// orders together, whatever their names.
func (s *Server) Stats(domains ...string) Stats {
	key, all := identifierKey(domains), len(domains) == 0
	a := s.acct
	a.mu.Lock()
	type event struct {
		at    time.Time
		delta int
	}
	var st Stats
	var events []event
	for _, o := range a.orders {
		if !all && o.key != key {
			continue
		}
		st.Orders++
		if o.replaces {
			st.Replacing++
		}
		if o.issued {
			st.Issued++
		}
		end := o.last
		if !end.After(o.created) {
			end = o.created.Add(time.Nanosecond) // an order is in flight for a moment at least
		}
		events = append(events, event{o.created, +1}, event{end, -1})
	}
	a.mu.Unlock()
	// Sweep; at equal instants ends go first (touching intervals do not overlap).
	slices.SortFunc(events, func(x, y event) int {
		if c := x.at.Compare(y.at); c != 0 {
			return c
		}
		return cmp.Compare(x.delta, y.delta)
	})
	cur := 0
	for _, e := range events {
		cur += e.delta
		st.MaxConcurrentOrders = max(st.MaxConcurrentOrders, cur)
	}
	return st
}
