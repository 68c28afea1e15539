package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/renew"
)

// Defaults of the [serve] section.
const (
	// defaultListen is where -serve's endpoints listen unless configured:
	// loopback, so that nothing is exposed by default.
	defaultListen = "127.0.0.1:9750"
	// defaultGrace is how long -serve may take to stop after SIGTERM: well
	// under Kubernetes' default terminationGracePeriodSeconds (30 s) and
	// systemd's TimeoutStopSec (90 s).
	defaultGrace = 15 * time.Second
	// minGrace leaves a hook at least a moment and the program time to
	// exit.
	minGrace = 2 * time.Second
	// maxGrace bounds the wait for a stop; longer hooks belong in the
	// background.
	maxGrace = 10 * time.Minute
	// defaultReadyLevel is the alert level at which /readyz fails.
	defaultReadyLevel = expiry.LevelWarning
)

// serveFile is the [serve] section as written.
type serveFile struct {
	Listen     *string   `toml:"listen"`
	Grace      *duration `toml:"grace"`
	ReadyLevel *string   `toml:"ready_level"`
}

// serveConfig is the [serve] section, checked, with defaults applied. Only
// -serve uses it.
type serveConfig struct {
	// Listen is the address (host:port) of /metrics, /healthz and /readyz.
	Listen string
	// Grace is how long a stop (SIGTERM, SIGINT) may take: the round in
	// progress stops before its next irreversible step, a running deploy
	// hook gets four fifths of Grace to finish, and the program exits 0.
	Grace time.Duration
	// ReadyLevel is the alert level (expiry.AlertLevel) from which a
	// certificate makes /readyz fail.
	ReadyLevel expiry.Level
}

// hookGrace is how long a running hook may go on after a stop was asked
// for; the rest of Grace is for the program to exit.
func (s serveConfig) hookGrace() time.Duration { return s.Grace - s.Grace/5 }

// serve checks the [serve] section; -listen overrides serve.listen.
func (v *validator) serve(f serveFile, ov overrides) serveConfig {
	sc := serveConfig{Listen: defaultListen, Grace: defaultGrace, ReadyLevel: defaultReadyLevel}
	fromFlag := false
	if f.Listen != nil {
		sc.Listen = *f.Listen
	}
	if ov.Listen != nil {
		sc.Listen, fromFlag = *ov.Listen, true
	}
	if err := checkListen(sc.Listen); err != nil {
		v.report(fromFlag, "listen", "serve.listen", "serve: listen %q: %v", sc.Listen, err)
	}
	if f.Grace != nil {
		sc.Grace = time.Duration(*f.Grace)
		if sc.Grace < minGrace || sc.Grace > maxGrace {
			v.at("serve.grace", "serve: grace %v must be between %v and %v", sc.Grace, minGrace, maxGrace)
		}
	}
	if f.ReadyLevel != nil {
		l, err := parseLevel(*f.ReadyLevel)
		if err != nil {
			v.at("serve.ready_level", "serve: ready_level: %v", err)
		}
		sc.ReadyLevel = l
	}
	return sc
}

// checkListen accepts host:port with a numeric port (the host may be empty
// for every address).
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:9750 or :9750")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// parseLevel reads an alert level name other than "ok".
func parseLevel(s string) (expiry.Level, error) {
	for l := expiry.LevelNotice; l <= expiry.LevelExpired; l++ {
		if strings.EqualFold(strings.TrimSpace(s), l.String()) {
			return l, nil
		}
	}
	return 0, fmt.Errorf("%q is not one of notice, warning, urgent, critical, expired", s)
}

// instance is one configuration being served: its issuers, its Renewer and
// the ServeUpdates loop running them. A reload replaces the instance.
type instance struct {
	cfg   *config
	iss   *issuers
	r     *renew.Renewer
	sink  *metricsSink
	certs []renew.Certificate
	// stop closes ServeUpdates' updates: a stop between rounds.
	stop chan []renew.Certificate
	// done receives ServeUpdates' return value.
	done chan error
	// closeFleet releases the fleet client (revoking its lease); a no-op
	// outside fleet mode.
	closeFleet func()
}

// close releases the instance's issuers and fleet client, once its loop
// has returned.
func (in *instance) close(log *slog.Logger) {
	if err := in.iss.Close(); err != nil {
		log.Warn("closing the ACME issuers", "error", err)
	}
	in.closeFleet()
}

// newInstance builds what cfg needs to be served, without starting it. It
// contacts no CA.
func (a *app) newInstance(ctx context.Context, cfg *config, certs []certConfig, ready *renew.Readiness) (*instance, error) {
	// A reload may name another root.
	if err := makeRoot(cfg); err != nil {
		return nil, err
	}
	iss, err := newIssuers(ctx, cfg, certs, a.log, false)
	if err != nil {
		return nil, err
	}
	sink := newMetricsSink("")
	in := &instance{cfg: cfg, iss: iss, sink: sink, certs: renewCerts(certs)}
	in.r = a.renewer(cfg, iss, observers{sink.collector, ready})
	in.r.HookGrace = cfg.Serve.hookGrace()
	// With a fleet, ServeUpdates also follows the fleet's watch: a
	// generation published by another node is installed here at once.
	if in.closeFleet, err = a.attachFleet(cfg, in.r, false); err != nil {
		if cerr := iss.Close(); cerr != nil {
			a.log.Warn("closing the ACME issuers", "error", cerr)
		}
		return nil, err
	}
	return in, nil
}

// start primes the metrics and readiness from disk and starts serving.
func (in *instance) start(ctx context.Context, ready *renew.Readiness, gather *atomic.Pointer[metricsSink]) {
	in.sink.prime(in.r, in.certs)
	ready.Configure(in.r, in.cfg.Serve.ReadyLevel, in.certs...)
	gather.Store(in.sink)
	in.stop = make(chan []renew.Certificate)
	in.done = make(chan error, 1)
	go func() { in.done <- in.r.ServeUpdates(ctx, in.stop, in.certs...) }()
}

// serveMode is -serve: renew each certificate when due until SIGTERM or
// SIGINT, reload the configuration on SIGHUP, and answer /metrics, /healthz
// and /readyz. Its steps:
//
//  1. listen on serve.listen (a busy address fails the start);
//  2. build the issuers and the Renewer (with [fleet], its fleet client:
//     ServeUpdates then also follows the fleet's watch and installs a
//     generation another node publishes at once), prime metrics and
//     readiness from disk, and start Renewer.ServeUpdates: the one-shot
//     run's state machine, round after round;
//  3. on SIGHUP, load the configuration again: an invalid one is logged
//     with file:line and the running one stays; a valid one gets new
//     issuers (and a new fleet client), then the running loop stops
//     between rounds (a round in progress finishes), its issuers and
//     fleet client are closed, and the new one starts;
//  4. when ctx ends (the first SIGTERM or SIGINT), the round in progress
//     stops before its next irreversible step, a running hook gets four
//     fifths of serve.grace, and the program exits 0. Should the stop take
//     longer than serve.grace it exits exitInterrupted at once; a second
//     signal kills it (main restores the default action).
func (a *app) serveMode(ctx context.Context, opts *options, cfg *config, certs []certConfig) int {
	// SIGHUP must not kill the program from here on.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The grace in force: a reload may change it.
	var grace atomic.Int64
	grace.Store(int64(cfg.Serve.Grace))
	returned := make(chan struct{})
	defer close(returned)
	// "stopped" is logged after "stopping": the loop can see the end of
	// ctx before the goroutine that logs "stopping" has run.
	stoppingLogged := make(chan struct{})
	logStopped := func() {
		<-stoppingLogged
		a.log.Info("stopped")
	}
	stopWatch := context.AfterFunc(ctx, func() {
		g := time.Duration(grace.Load())
		a.log.Info("stopping", "grace", g)
		close(stoppingLogged)
		t := time.NewTimer(g)
		defer t.Stop()
		select {
		case <-t.C:
			// Like a SIGKILL, which renewkit survives: the next start
			// finishes what this one began.
			a.log.Error("did not stop within the grace period; exiting now", "grace", g)
			os.Exit(exitInterrupted)
		case <-returned:
		}
	})
	defer stopWatch()

	ready := &renew.Readiness{Now: a.clock}
	var gather atomic.Pointer[metricsSink]
	// (1)
	srv, err := startEndpoints(cfg.Serve.Listen, ready, &gather, a.log)
	if err != nil {
		fmt.Fprintf(a.stderr, "renew-certificates: %v\n", err)
		return exitFailed
	}
	defer srv.stop()
	// (2) The root, as the one-shot run makes it (a problem there is this
	// machine's: exit 1, where newInstance's errors are configuration's).
	if err := makeRoot(cfg); err != nil {
		fmt.Fprintf(a.stderr, "renew-certificates: %v\n", err)
		return exitFailed
	}
	if err := a.checkRoot(cfg); err != nil {
		fmt.Fprintf(a.stderr, "renew-certificates: %v\n", err)
		return exitFailed
	}
	cur, err := a.newInstance(ctx, cfg, certs, ready)
	if err != nil {
		fmt.Fprintf(a.stderr, "renew-certificates: %v\n", err)
		return exitUsage
	}
	cur.start(ctx, ready, &gather)
	a.log.Info("serving", "certificates", len(certs), "config", cfg.Path, "listen", srv.addr, "grace", cfg.Serve.Grace)
	defer func() { cur.close(a.log) }()
	for {
		select {
		case err := <-cur.done:
			// (4)
			if ctx.Err() != nil {
				logStopped()
				return exitOK
			}
			fmt.Fprintf(a.stderr, "renew-certificates: %v\n", err)
			return exitFailed
		case <-hup:
			// (3)
			next := a.reloadInstance(ctx, opts, cur, ready)
			if next == nil {
				continue
			}
			// The running loop stops between rounds: a round in progress
			// (an order, its hooks) finishes first.
			close(cur.stop)
			err := <-cur.done
			cur.close(a.log)
			cur = next
			grace.Store(int64(cur.cfg.Serve.Grace))
			if ctx.Err() != nil {
				logStopped()
				return exitOK
			}
			if err != nil {
				fmt.Fprintf(a.stderr, "renew-certificates: %v\n", err)
				return exitFailed
			}
			cur.start(ctx, ready, &gather)
			a.log.Info("configuration reloaded", "certificates", len(cur.certs))
		}
	}
}

// reloadInstance is the first half of step 3 of serveMode: it loads the
// configuration again and builds what it needs. It returns nil, having
// logged why, when the running configuration stays: the new one is
// invalid or its issuers cannot be built.
func (a *app) reloadInstance(ctx context.Context, opts *options, cur *instance, ready *renew.Readiness) *instance {
	a.log.Info("SIGHUP: reloading the configuration", "config", opts.config)
	cfg, err := loadConfig(opts.config, opts.overrides)
	var certs []certConfig
	if err == nil {
		certs, err = selectCerts(cfg, opts.certs, nil)
	}
	if err != nil {
		a.log.Error("configuration not reloaded; the running one stays in force", "problems", strings.Split(err.Error(), "\n"))
		return nil
	}
	if cfg.Serve.Listen != cur.cfg.Serve.Listen {
		a.log.Warn("serve.listen changed; the endpoints move only on restart", "listening", cur.cfg.Serve.Listen, "configured", cfg.Serve.Listen)
	}
	next, err := a.newInstance(ctx, cfg, certs, ready)
	if err != nil {
		a.log.Error("configuration not reloaded; the running one stays in force", "error", err)
		return nil
	}
	return next
}

// observers fans a Renewer's events out to several Observers.
type observers []renew.Observer

func (obs observers) Finished(res renew.Result) {
	for _, o := range obs {
		o.Finished(res)
	}
}

// serveFlags checks the flags that concern -serve.
func serveFlags(opts *options, set map[string]bool) error {
	if !opts.serve {
		if set["listen"] {
			return errors.New("-listen needs -serve")
		}
		return nil
	}
	if set["metrics-file"] {
		return errors.New("-metrics-file is for one-shot runs; -serve exposes /metrics on serve.listen")
	}
	return nil
}
