// Package metrics exports renewkit's renewal state and outcomes to
// Prometheus: a [Collector] that a [renew.Renewer] feeds as its Observer
// (and that [renew.Status] values can update), and [WriteTextfile], the
// node_exporter textfile-collector output of a one-shot run.
//
// The core packages never import client_golang; only programs that want
// Prometheus metrics import this package.
//
// # Use
//
// A one-shot program (the renew-certificates command):
//
//	reg := prometheus.NewRegistry() // a dedicated registry, not the global one
//	c := metrics.New()
//	reg.MustRegister(c)
//	c.Track(certs...) // domains for renewkit_certificate_info
//	r := &renew.Renewer{Root: root, Issuer: issuer, Observer: c}
//	results := r.Run(ctx, certs...)
//	// Lineages this run did not touch (a -force NAME run) from disk:
//	c.ObserveStatus(r.Status(untouched...)...)
//	err := metrics.WriteTextfile("/var/lib/node_exporter/textfile_collector/renewkit.prom", reg)
//
// A service that embeds a Renewer registers c the same way, serves reg with
// promhttp.HandlerFor, and may prime c with ObserveStatus(r.Status(certs...)...)
// before Serve's first round.
//
// # Metrics
//
// Every series has a name label, the lineage name. Timestamps are seconds
// since the Unix epoch. A series whose value is unknown (no certificate
// installed, never succeeded, no backoff in force) is absent rather than 0.
//
//	renewkit_certificate_info{name,domains,serial}                 gauge, always 1
//	renewkit_certificate_not_after_timestamp_seconds{name}         gauge
//	renewkit_certificate_renew_at_timestamp_seconds{name}          gauge
//	renewkit_renewal_last_success_timestamp_seconds{name}          gauge
//	renewkit_renewal_consecutive_failures{name}                    gauge
//	renewkit_renewal_retry_not_before_timestamp_seconds{name}      gauge
//	renewkit_deploy_hooks_pending{name}                            gauge
//	renewkit_renewal_last_run_timestamp_seconds{name}              gauge
//	renewkit_renewal_last_run_ok{name}                             gauge, 0 or 1
//	renewkit_lock_held_seconds{name}                               gauge
//	renewkit_renewal_runs_total{name,outcome}                      counter
//	renewkit_issuance_attempts_total{name,result}                  counter
//	renewkit_fleet_reachable{name}                                 gauge, 0 or 1 (fleet mode only)
//
// domains is the comma-separated list of configured names; it lives on the
// info metric only, so that it does not multiply every other series. Join
// it in a query with
//
//	renewkit_certificate_not_after_timestamp_seconds
//	  * on(name) group_left(domains) renewkit_certificate_info
//
// outcome is a [renew.Outcome] (not_due, renewed, recovered, locked,
// lock_stuck, backing_off, failed, interrupted, deferred); result is success (the attempt
// obtained the certificate the run installed) or error. Both counters are
// updated when a run finishes.
//
// Counters count what this process observed. In a one-shot program that
// writes a textfile they start from zero in every run, so alert on the
// gauges (consecutive failures, last run, last success), which come from
// the state each lineage persists across runs.
//
// renewkit_fleet_reachable exists once a run of the lineage showed fleet
// mode (renew.Renewer.Fleet set): 0 after a run deferred because the
// fleet's etcd could not be consulted, 1 after any other run (a run that
// was interrupted leaves it as it was).
//
// The alert rules in examples/prometheus/renewkit-alerts.yml are written
// against these names.
//
// # Crash safety
//
// [WriteTextfile] replaces its file atomically and durably
// ([atomicfs.WriteFile]: temporary file in the same directory, fsync,
// rename, fsync of the directory), so node_exporter reads either the
// previous run's metrics or this run's, never a partial file. A process
// killed mid-write leaves a hidden temporary file (.NAME followed by
// digits), which node_exporter ignores (it reads *.prom only) and a later
// WriteTextfile to the same path removes once it is an hour old.
// Precondition: the directory is on a local file system where rename(2) is
// atomic.
//
// The Collector holds no durable state: what must survive a crash
// (failures, not-before, last success, pending hooks) lives in each
// lineage's state.json and reaches the Collector through Results and
// Statuses.
package metrics
