package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/internal/safefile"
	"github.com/renewkit/renewkit/renew"
)

// sealKeyFix is what to do about a seal key file that cannot be used.
const sealKeyFix = "make it with (umask 077; openssl rand -hex 32 > FILE), owned by the user renew-certificates runs as, mode 0600, and copy the same file to every node"

// fleetKeys maps the fields of fleet.Config that fleet.Dial's
// configuration errors name (renew.ConfigError.Field) to the keys of the
// [fleet] table.
var fleetKeys = map[string]string{
	"Endpoints":       "endpoints",
	"SealKeyFile":     "seal_key_file",
	"OldSealKeyFiles": "old_seal_key_files",
	"Node":            "node",
	"LockTTL":         "lock_ttl",
	"CAFile":          "ca_file",
	"CertFile":        "cert_file",
	"KeyFile":         "key_file",
}

// fleetCheckFix is what to check when etcd cannot be reached.
const fleetCheckFix = "check [fleet] endpoints (every member's client URL), the TLS files (ca_file, cert_file, key_file) and that a majority of the etcd members is up"

// checkSealKeys loads the seal keys of cfg's [fleet] section as a run
// would: each file exists, is a regular file owned by this user with mode
// 0600 or 0400, and holds 32 bytes or 64 hex digits. The error names the
// key, its line and the fix; it never contains key material.
func checkSealKeys(cfg *config) error {
	fc := cfg.Fleet
	if _, err := fleet.LoadSealer(fc.SealKeyFile); err != nil {
		return &configProblem{Path: cfg.Path, Line: cfg.line("fleet.seal_key_file"),
			Msg: fmt.Sprintf("fleet: seal_key_file: %s; %s", sealKeyProblem(err), sealKeyFix)}
	}
	for _, old := range fc.OldSealKeyFiles {
		if _, err := fleet.LoadSealer(old); err != nil {
			return &configProblem{Path: cfg.Path, Line: cfg.line("fleet.old_seal_key_files"),
				Msg: fmt.Sprintf("fleet: old_seal_key_files: %s; fix the file or remove it from the list once the rotation is over", sealKeyProblem(err))}
		}
	}
	return nil
}

// sealKeyProblem words a seal key file error for the messages above.
func sealKeyProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "fleet: ")
	if errors.Is(err, fs.ErrNotExist) {
		msg += " (missing)"
	}
	if errors.Is(err, safefile.ErrInsecure) {
		msg += " (run: chown $(id -un) FILE; chmod 0600 FILE)"
	}
	return msg
}

// line is the line of the key at ipath, or 0.
func (cfg *config) line(ipath string) int {
	if cfg.index == nil {
		return 0
	}
	return cfg.index().line(ipath)
}

// dialFleet checks the seal keys and dials the fleet's etcd client. It
// contacts no etcd member (fleet.Dial does not wait). The error is a
// *configProblem naming the [fleet] key at fault.
func (a *app) dialFleet(cfg *config) (*fleet.Client, error) {
	if err := checkSealKeys(cfg); err != nil {
		return nil, err
	}
	fc := *cfg.Fleet
	fc.Logger = a.log.With("component", "fleet")
	c, err := fleet.Dial(fc)
	if err != nil {
		// The seal keys were checked above: what is left are the
		// endpoints and the TLS files, which fleet.Dial names.
		ce, ok := errors.AsType[*renew.ConfigError](err)
		if !ok {
			return nil, &configProblem{Path: cfg.Path, Line: cfg.line("fleet"), Msg: "fleet: " + strings.TrimPrefix(err.Error(), "fleet: ")}
		}
		key := fleetKeys[ce.Field]
		if key == "" {
			key = ce.Field
		}
		return nil, &configProblem{Path: cfg.Path, Line: cfg.line("fleet." + key), Msg: "fleet: " + key + ": " + ce.Err.Error()}
	}
	return c, nil
}

// attachFleet gives r the fleet of cfg's [fleet] section, unless there is
// none or noFleet says to run as a single node this time (loudly). The
// returned close releases the client (revoking its lease, so that locks it
// holds are released at once); it is never nil.
func (a *app) attachFleet(cfg *config, r *renew.Renewer, noFleet bool) (closeFleet func(), err error) {
	nothing := func() {}
	switch {
	case cfg.Fleet == nil:
		return nothing, nil
	case noFleet:
		a.log.Warn("-no-fleet: fleet mode is off for this run; every certificate that is due is ordered by this node alone, "+
			"with its own key and without the fleet lock, and installed here only; the other nodes keep serving the fleet's certificate. "+
			"Once etcd is back, a run without -no-fleet publishes this node's certificate to the fleet if it outlives the fleet's due one, or installs the fleet's generation here again. "+
			"Use it only when etcd stays unreachable while a certificate nears expiry",
			"fault", "fleet", "endpoints", strings.Join(cfg.Fleet.Endpoints, ","))
		return nothing, nil
	}
	c, err := a.dialFleet(cfg)
	if err != nil {
		return nothing, err
	}
	r.Fleet = &accountFleet{Client: c, share: func(ctx context.Context) error { return shareAccount(ctx, c, cfg, a.log) }}
	return func() {
		if err := c.Close(); err != nil {
			a.log.Warn("closing the fleet client", "error", err)
		}
	}, nil
}

// reportDeferred says, once per run, that renewal was deferred because the
// fleet could not be consulted: on standard error in one line, and in the
// log with fault=fleet.
func (a *app) reportDeferred(cfg *config, results []renew.Result) {
	var names []string
	var first error
	for _, res := range results {
		if res.Outcome == renew.Deferred {
			names = append(names, res.Name)
			if first == nil {
				first = res.Err
			}
		}
	}
	if len(names) == 0 {
		return
	}
	endpoints := ""
	if cfg.Fleet != nil {
		endpoints = strings.Join(cfg.Fleet.Endpoints, ",")
	}
	a.log.Warn("renewal deferred: the fleet's etcd could not be consulted; the installed certificates are still served",
		"fault", "fleet", "certificates", names, "endpoints", endpoints, "error", first, "fix", fleetCheckFix)
	fmt.Fprintf(a.stderr, "renew-certificates: renewal of %s deferred: the fleet's etcd (%s) could not be consulted; the installed certificate is still served; %s\n",
		strings.Join(names, ", "), endpoints, fleetCheckFix)
}

// fleetView reads the fleet's records of certs in one range read, and
// returns them with this node's name and a line saying whether this
// node's ACME account key is the fleet's (accountStatus). The client is
// dialled and closed here. A *configProblem is a [fleet] key at fault; any
// other error means etcd could not answer.
func (a *app) fleetView(ctx context.Context, cfg *config, certs []certConfig) (snap *fleet.Snapshot, node string, account accountLine, err error) {
	c, err := a.dialFleet(cfg)
	if err != nil {
		return nil, "", accountLine{}, err
	}
	defer c.Close()
	lins := make([]fleet.Lineage, len(certs))
	for i, cc := range certs {
		// In renew's canonical form, as the Renewer's View asks for them.
		lins[i] = fleet.Lineage{Name: cc.Name, Domains: make([]string, len(cc.Domains))}
		for j, d := range cc.Domains {
			lins[i].Domains[j] = renew.CanonicalName(d)
		}
	}
	if snap, err = c.ReadStates(ctx, lins...); err != nil {
		return nil, c.Node(), accountLine{}, err
	}
	return snap, c.Node(), accountStatus(ctx, c, cfg, a.log), nil
}

// writeFleetUnreachable says that the fleet could not be read, and why:
// a [fleet] file that cannot be used (a *configProblem) or etcd.
func writeFleetUnreachable(w io.Writer, err error) {
	if ce, ok := errors.AsType[*configProblem](err); ok {
		fmt.Fprintf(w, "fleet: not read: %s\nfleet: the table above is this node's local state only\n", oneLine(ce.Error()))
		return
	}
	fmt.Fprintf(w, "fleet: unreachable: %s\nfleet: the table above is this node's local state only; %s\n", oneLine(err.Error()), fleetCheckFix)
}

// dryRunFleet is -dry-run's part in fleet mode: it checks the seal key
// files and the TLS files, reads the fleet's records of certs, and prints
// what the fleet would make a run do first, as r.Plan decides it with the
// run's own functions (r gets the fleet client for the plan). It returns
// the number of problems printed and the exit code they call for.
func (a *app) dryRunFleet(ctx context.Context, cfg *config, certs []certConfig, r *renew.Renewer) (problems, code int) {
	snap, _, account, err := a.fleetView(ctx, cfg, certs)
	var plans []renew.Plan
	if err == nil {
		var c *fleet.Client
		if c, err = a.dialFleet(cfg); err == nil {
			defer c.Close()
			r.Fleet = c
			plans, err = r.Plan(ctx, renewCerts(certs)...)
			r.Fleet = nil
		}
	}
	var ce *configProblem
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(a.stdout, "fleet: problem: %s\n", ce.Error())
		return 1, exitUsage
	case err != nil && ctx.Err() != nil:
		return 0, exitInterrupted
	case err != nil:
		fmt.Fprintf(a.stdout, "fleet: problem: etcd (%s) did not answer: %s; a run now would be deferred (exit 1) and change nothing; %s\n",
			strings.Join(cfg.Fleet.Endpoints, ","), oneLine(err.Error()), fleetCheckFix)
		return 1, exitFailed
	}
	fmt.Fprintf(a.stdout, "fleet: etcd answered (revision %d); seal key and TLS files usable\n", snap.Revision)
	if account.problem {
		problems++
		code = max(code, exitFailed)
		fmt.Fprintf(a.stdout, "fleet: problem: account: %s; a run would fail every certificate until it is repaired\n", account.line)
	} else {
		fmt.Fprintf(a.stdout, "fleet: account: %s\n", account.line)
	}
	for _, p := range plans {
		fv := p.Fleet
		if fv == nil {
			continue
		}
		g := fv.Current
		switch {
		case fv.Err != nil:
			problems++
			code = max(code, exitFailed)
			fmt.Fprintf(a.stdout, "%s: problem: fleet record: %s; a run would neither renew nor install it (the installed certificate stays) until the record is repaired\n", p.Name, oneLine(fv.Err.Error()))
		case p.Install:
			fmt.Fprintf(a.stdout, "%s: would first install the fleet's generation %d (serial %s, published by %s)\n", p.Name, g.Number, g.Serial, orDash(g.Publisher))
		case p.NotInstalled != "":
			fmt.Fprintf(a.stdout, "%s: would not install the fleet's generation %d (serial %s, published by %s): %s\n", p.Name, g.Number, g.Serial, orDash(g.Publisher), oneLine(p.NotInstalled))
		case g.Number != 0 && p.Installed && strings.EqualFold(p.Serial, g.Serial):
			fmt.Fprintf(a.stdout, "%s: the fleet's generation %d is the one installed here\n", p.Name, g.Number)
		}
		switch {
		case p.Adopt && g.Number == 0:
			fmt.Fprintf(a.stdout, "%s: the fleet has no generation yet: would publish the one installed here as its first\n", p.Name)
		case p.Adopt:
			fmt.Fprintf(a.stdout, "%s: would publish the one installed here as the fleet's generation %d (no order)\n", p.Name, g.Number+1)
		}
		if fv.Holder != "" {
			fmt.Fprintf(a.stdout, "%s: fleet lock held by %s: a run now would leave the lineage to it\n", p.Name, fv.Holder)
		}
	}
	return problems, code
}
