package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renewkit/renewkit/renew"
)

// timeFormat is how the table shows instants: UTC, to the minute.
const timeFormat = "2006-01-02 15:04Z"

// writeStatusTable prints one row per lineage, then a line for each thing
// that needs attention (errors, pending hooks, an order in flight).
func writeStatusTable(w io.Writer, sts []renew.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDOMAINS\tNOT AFTER\tRENEW AT\tWHY\tLAST OUTCOME\tFAILURES\tNOT BEFORE\tHOOKS PENDING")
	for _, s := range sts {
		notAfter := "-"
		if s.Installed {
			notAfter = fmtTime(s.NotAfter, now)
		}
		renewAt := "now"
		if !s.Due && !s.RenewAt.IsZero() {
			renewAt = fmtTime(s.RenewAt, now)
		}
		why := s.Reason
		if s.Err != nil {
			why = "error (see below)"
		}
		last := "-"
		if s.LastOutcome != "" {
			last = string(s.LastOutcome)
			if !s.LastAttempt.IsZero() {
				last += " " + rel(s.LastAttempt, now)
			}
		}
		notBefore := "-"
		if now.Before(s.RetryNotBefore) {
			notBefore = fmtTime(s.RetryNotBefore, now)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\n",
			s.Name, fmtDomains(s.Domains), notAfter, renewAt, orDash(why), last, s.Failures, notBefore, pendingCount(s))
	}
	tw.Flush()
	for _, s := range sts {
		for _, note := range notes(s) {
			fmt.Fprintf(w, "%s: %s\n", s.Name, note)
		}
		for _, a := range attention(s, now) {
			fmt.Fprintf(w, "%s: needs attention: %s\n", s.Name, a)
		}
	}
}

// notes are the things about s that a row cannot show.
func notes(s renew.Status) []string {
	var out []string
	if s.Err != nil {
		out = append(out, "error: "+oneLine(s.Err.Error()))
	}
	switch {
	case s.LastErrorLocal && s.LastError != "":
		out = append(out, "last error (on this machine, not the CA's; not counted as a failure): "+oneLine(s.LastError))
	case s.Failures > 0 && s.LastError != "":
		out = append(out, "last error: "+oneLine(s.LastError))
	}
	if s.ConfigChanged && s.Failures > 0 {
		out = append(out, "the configuration changed since these failures: the next run does not back off")
	}
	for _, e := range s.HooksPending {
		for _, h := range e.Pending {
			n := fmt.Sprintf("deploy hook %q pending for generation %d", h.Name, e.Generation)
			if h.Attempts > 0 {
				n += fmt.Sprintf(" (%d failed attempts; last: %s)", h.Attempts, oneLine(h.LastError))
			}
			out = append(out, n)
		}
	}
	if s.OrderInFlight != "" {
		out = append(out, "order "+s.OrderInFlight+" was placed by a run that did not finish; the next run finishes it and installs its certificate")
	}
	return out
}

// writeDryRun prints what a run would do for each lineage. command makes
// the command line that retries a certificate now.
func writeDryRun(w io.Writer, sts []renew.Status, now time.Time, command func(args ...string) string) {
	for _, s := range sts {
		var line string
		switch {
		case s.Err != nil && !s.Due:
			line = "cannot tell: " + oneLine(s.Err.Error())
		case s.Due && now.Before(s.RetryNotBefore) && s.Reason != "forced" && s.ConfigChanged:
			line = fmt.Sprintf("would renew now: %s (the configuration changed since the %d failures, so their backoff does not apply)", s.Reason, s.Failures)
		case s.Due && now.Before(s.RetryNotBefore) && s.Reason != "forced":
			line = fmt.Sprintf("due (%s), but backing off after %d failures until %s; last error: %s; to retry now: %s",
				s.Reason, s.Failures, fmtTime(s.RetryNotBefore, now), oneLine(s.LastError), command("-force", s.Name))
		case s.Due:
			line = "would renew now: " + s.Reason
		default:
			line = fmt.Sprintf("not due: would renew at %s: %s", fmtTime(s.RenewAt, now), s.Reason)
		}
		fmt.Fprintf(w, "%s: %s\n", s.Name, line)
		if s.OrderInFlight != "" {
			fmt.Fprintf(w, "%s: would first install the certificate of order %s, placed by a run that did not finish\n", s.Name, s.OrderInFlight)
		}
		if n := pendingCount(s); n > 0 {
			fmt.Fprintf(w, "%s: would replay %d pending deploy hook runs\n", s.Name, n)
		}
		if s.Err != nil && s.Due {
			fmt.Fprintf(w, "%s: note: %s\n", s.Name, oneLine(s.Err.Error()))
		}
	}
}

func pendingCount(s renew.Status) int {
	n := 0
	for _, e := range s.HooksPending {
		n += len(e.Pending)
	}
	return n
}

// fmtTime shows t in UTC with how far it is from now.
func fmtTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeFormat) + " (" + rel(t, now) + ")"
}

// rel says how far t is from now, coarsely: "in 59d", "3h ago".
func rel(t, now time.Time) string {
	d := t.Sub(now)
	suffix, prefix := "", "in "
	if d < 0 {
		d, suffix, prefix = -d, " ago", ""
	}
	var s string
	switch {
	case d < time.Minute && suffix != "":
		return "just now"
	case d < time.Minute:
		return "now"
	case d < time.Hour:
		s = strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		s = strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return prefix + s + suffix
}

// fmtDomains lists at most three domains.
func fmtDomains(ds []string) string {
	if len(ds) <= 3 {
		return orDash(strings.Join(ds, ","))
	}
	return strings.Join(ds[:3], ",") + fmt.Sprintf(",+%d", len(ds)-3)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a message on one line for the table's notes.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// short cuts a hex serial for a table (-json and the logs have it whole).
func short(serial string) string {
	if len(serial) > 12 {
		return serial[:12] + "…"
	}
	return serial
}
