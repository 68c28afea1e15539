package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/renew"
)

// fleetStatus is what -status learned from the fleet: a snapshot of the
// selected lineages' records, or why there is none.
type fleetStatus struct {
	endpoints []string
	// node is this node's name in the fleet ("" if the client could not
	// be made).
	node string
	// account says whether this node's ACME account key is the fleet's.
	account accountLine
	snap    *fleet.Snapshot
	err     error
}

// state is the fleet's record of lineage name (nil when unknown).
func (fv *fleetStatus) state(name string) *fleet.State {
	if fv == nil || fv.snap == nil {
		return nil
	}
	return fv.snap.States[name]
}

// writeFleetTable prints, in fleet mode, the fleet's view of each lineage
// next to the local one, then a line for each thing that needs attention.
// It prints nothing when fv is nil (no [fleet], or -no-fleet).
func writeFleetTable(w io.Writer, sts []renew.Status, fv *fleetStatus, now time.Time) {
	if fv == nil {
		return
	}
	fmt.Fprintf(w, "\nFleet (etcd %s", strings.Join(fv.endpoints, ","))
	if fv.node != "" {
		fmt.Fprintf(w, "; this node: %s", fv.node)
	}
	fmt.Fprintln(w, "):")
	if fv.err != nil {
		writeFleetUnreachable(w, fv.err)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFLEET GEN\tFLEET SERIAL\tLOCAL GEN\tLOCAL SERIAL\tIN SYNC\tLOCK HOLDER\tORDER IN PROGRESS\tFAILURES\tNOT BEFORE")
	for _, s := range sts {
		st := fv.state(s.Name)
		if st == nil {
			continue
		}
		gen, serial, sync := "-", "-", "-"
		if st.Meta != nil {
			gen, serial = strconv.FormatInt(st.Meta.Number, 10), orDash(short(st.Meta.Serial))
			sync = "no"
			if s.Installed && strings.EqualFold(s.Serial, st.Meta.Serial) {
				sync = "yes"
			}
		}
		localGen, local := "-", "-"
		if s.Installed {
			local = short(s.Serial)
			if s.FleetGeneration != 0 {
				localGen = strconv.FormatUint(s.FleetGeneration, 10)
			}
		}
		holder := "-"
		if st.Holder != "" {
			holder = st.Holder
			if st.Holder == fv.node {
				holder += " (this node)"
			}
			if !st.HolderSince.IsZero() {
				holder += " since " + rel(st.HolderSince, now)
			}
		}
		order := "-"
		if j := st.Journal; j != nil {
			order = orDash(j.Node) + ", " + strings.TrimSuffix(rel(j.Created, now), " ago") + " old"
		}
		failures, notBefore := 0, "-"
		if b := st.Backoff; b != nil {
			failures = b.Failures
			if now.Before(b.NotBefore) {
				notBefore = fmtTime(b.NotBefore, now)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, gen, serial, localGen, local, sync, holder, order, failures, notBefore)
	}
	tw.Flush()
	for _, s := range sts {
		for _, note := range fleetNotes(s, fv.state(s.Name), now) {
			fmt.Fprintf(w, "%s: fleet: %s\n", s.Name, note)
		}
	}
	if fv.account.line != "" {
		fmt.Fprintf(w, "fleet: account: %s\n", fv.account.line)
	}
}

// fleetNotes are the things about the fleet's record st of s that a row
// cannot show.
func fleetNotes(s renew.Status, st *fleet.State, now time.Time) []string {
	if st == nil {
		return nil
	}
	var out []string
	if st.Err != nil {
		out = append(out, "record error: "+oneLine(st.Err.Error())+"; no node renews or installs this certificate until the record is repaired (the installed one stays)")
	}
	switch m := st.Meta; {
	case st.Err != nil:
	case m == nil && s.Installed && !s.Due:
		out = append(out, "the fleet has no generation yet: the next run publishes the one installed here as the fleet's first (no order)")
	case m == nil:
		out = append(out, "the fleet has no generation yet: the next run orders one under the fleet lock")
	case !s.Installed || !strings.EqualFold(s.Serial, m.Serial):
		out = append(out, fmt.Sprintf("generation %d (serial %s, published by %s %s) is not the one installed here: the next run installs it",
			m.Number, m.Serial, orDash(m.IssuedBy), rel(m.Published, now)))
	}
	if j := st.Journal; j != nil {
		out = append(out, fmt.Sprintf("order %s placed by %s %s is in progress: whichever node holds the lock finishes it", j.OrderURL, orDash(j.Node), rel(j.Created, now)))
	}
	if b := st.Backoff; b != nil && b.Failures > 0 {
		n := fmt.Sprintf("%d failed renewals (last on %s)", b.Failures, orDash(b.Node))
		if now.Before(b.NotBefore) {
			n += ": no node orders before " + fmtTime(b.NotBefore, now)
		}
		if b.LastError != "" {
			n += "; last error: " + oneLine(b.LastError)
		}
		out = append(out, n)
	}
	return out
}

// statusReport is -status -json: one document on standard output.
type statusReport struct {
	Certificates []statusEntry `json:"certificates"`
	// Fleet is set in fleet mode (absent with -no-fleet).
	Fleet *fleetReport `json:"fleet,omitempty"`
}

// fleetReport says whether the fleet could be read.
type fleetReport struct {
	Endpoints []string `json:"endpoints"`
	Node      string   `json:"node,omitempty"`
	Reachable bool     `json:"reachable"`
	Error     string   `json:"error,omitempty"`
	// Revision is the etcd revision the records were read at.
	Revision int64 `json:"revision,omitempty"`
	// Account says whether this node's ACME account key is the fleet's.
	Account string `json:"account,omitempty"`
}

// statusEntry is one lineage: the local state, and the fleet's.
type statusEntry struct {
	Name       string   `json:"name"`
	Domains    []string `json:"domains"`
	Installed  bool     `json:"installed"`
	Generation int      `json:"generation,omitempty"`
	// FleetGeneration is the fleet's number of the installed generation,
	// as recorded here (fleet mode).
	FleetGeneration uint64    `json:"fleet_generation,omitempty"`
	Serial          string    `json:"serial,omitempty"`
	NotBefore       time.Time `json:"not_before,omitzero"`
	NotAfter        time.Time `json:"not_after,omitzero"`
	Due             bool      `json:"due"`
	RenewAt         time.Time `json:"renew_at,omitzero"`
	Reason          string    `json:"reason,omitempty"`
	Alert           string    `json:"alert"`
	LastOutcome     string    `json:"last_outcome,omitempty"`
	LastAttempt     time.Time `json:"last_attempt,omitzero"`
	LastSuccess     time.Time `json:"last_success,omitzero"`
	LastError       string    `json:"last_error,omitempty"`
	LastErrorLocal  bool      `json:"last_error_local,omitempty"`
	Failures        int       `json:"failures"`
	RetryNotBefore  time.Time `json:"retry_not_before,omitzero"`
	HooksPending    int       `json:"hooks_pending"`
	OrderInFlight   string    `json:"order_in_flight,omitempty"`
	// Attention lists why the certificate needs attention (what makes
	// -status exit 1); empty when it does not.
	Attention []string   `json:"attention,omitempty"`
	Error     string     `json:"error,omitempty"`
	Fleet     *fleetLine `json:"fleet,omitempty"`
}

// fleetLine is the fleet's record of one lineage.
type fleetLine struct {
	Generation     int64       `json:"generation"`
	Serial         string      `json:"serial,omitempty"`
	InSync         bool        `json:"in_sync"`
	Publisher      string      `json:"publisher,omitempty"`
	Published      time.Time   `json:"published,omitzero"`
	Holder         string      `json:"holder,omitempty"`
	HolderSince    time.Time   `json:"holder_since,omitzero"`
	Order          *fleetOrder `json:"order,omitempty"`
	Failures       int         `json:"failures"`
	RetryNotBefore time.Time   `json:"retry_not_before,omitzero"`
	LastError      string      `json:"last_error,omitempty"`
	Error          string      `json:"error,omitempty"`
}

// fleetOrder is an order in progress in the fleet's journal.
type fleetOrder struct {
	URL        string    `json:"url"`
	Node       string    `json:"node"`
	Created    time.Time `json:"created"`
	AgeSeconds float64   `json:"age_seconds"`
}

// writeStatusJSON prints sts and the fleet's view as one JSON document.
func writeStatusJSON(w io.Writer, sts []renew.Status, fv *fleetStatus, now time.Time) {
	rep := statusReport{Certificates: make([]statusEntry, 0, len(sts))}
	if fv != nil {
		rep.Fleet = &fleetReport{Endpoints: fv.endpoints, Node: fv.node, Reachable: fv.err == nil}
		if fv.err != nil {
			rep.Fleet.Error = fv.err.Error()
		} else {
			rep.Fleet.Revision = fv.snap.Revision
			rep.Fleet.Account = fv.account.line
		}
	}
	for _, s := range sts {
		e := statusEntry{
			Name: s.Name, Domains: s.Domains, Installed: s.Installed, Generation: s.Generation, FleetGeneration: s.FleetGeneration, Serial: s.Serial,
			NotBefore: s.NotBefore, NotAfter: s.NotAfter, Due: s.Due, RenewAt: s.RenewAt, Reason: s.Reason,
			Alert: s.Alert.String(), LastOutcome: string(s.LastOutcome), LastAttempt: s.LastAttempt,
			LastSuccess: s.LastSuccess, LastError: s.LastError, LastErrorLocal: s.LastErrorLocal,
			Failures: s.Failures, RetryNotBefore: s.RetryNotBefore, HooksPending: pendingCount(s),
			OrderInFlight: s.OrderInFlight, Attention: attention(s, now),
		}
		if s.Err != nil {
			e.Error = s.Err.Error()
		}
		if st := fv.state(s.Name); st != nil {
			e.Fleet = fleetEntry(s, st, now)
		}
		rep.Certificates = append(rep.Certificates, e)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep) // standard output went away: nothing to do
}

// fleetEntry is -json's view of the fleet's record st of s.
func fleetEntry(s renew.Status, st *fleet.State, now time.Time) *fleetLine {
	l := &fleetLine{Holder: st.Holder, HolderSince: st.HolderSince}
	if m := st.Meta; m != nil {
		l.Generation, l.Serial, l.Publisher, l.Published = m.Number, m.Serial, m.IssuedBy, m.Published
		l.InSync = s.Installed && strings.EqualFold(s.Serial, m.Serial)
	}
	if j := st.Journal; j != nil {
		l.Order = &fleetOrder{URL: j.OrderURL, Node: j.Node, Created: j.Created, AgeSeconds: now.Sub(j.Created).Seconds()}
	}
	if b := st.Backoff; b != nil {
		l.Failures, l.RetryNotBefore, l.LastError = b.Failures, b.NotBefore, b.LastError
	}
	if st.Err != nil {
		l.Error = st.Err.Error()
	}
	return l
}
