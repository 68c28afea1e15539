package metrics_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/renewkit/renewkit/metrics"
	"github.com/renewkit/renewkit/renew"
)

// A Collector is registered with a dedicated registry and set as a
// Renewer's Observer (renew.Renewer{..., Observer: c}); the Renewer then
// reports every run to it. Here one Result is passed by hand, as the
// Renewer would pass it.
func Example() {
	reg := prometheus.NewRegistry() // not the global default registry
	c := metrics.New()
	reg.MustRegister(c)

	cert := renew.Certificate{Name: "example.com", Domains: []string{"example.com", "www.example.com"}}
	c.Track(cert)
	_ = &renew.Renewer{Root: "/var/lib/renewkit", Observer: c} // r.Run(ctx, cert) reports to c

	c.Finished(renew.Result{
		Name:     "example.com",
		Outcome:  renew.NotDue,
		Serial:   "0a1b2c",
		NotAfter: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
		RenewAt:  time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
	})

	mfs, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "renewkit_certificate_") {
			mf.Help = nil // shorten the output
			if _, err := expfmt.MetricFamilyToText(os.Stdout, mf); err != nil {
				fmt.Println(err)
			}
		}
	}
	// Output:
	// # TYPE renewkit_certificate_info gauge
	// renewkit_certificate_info{domains="example.com,www.example.com",name="example.com",serial="0a1b2c"} 1
	// # TYPE renewkit_certificate_not_after_timestamp_seconds gauge
	// renewkit_certificate_not_after_timestamp_seconds{name="example.com"} 1.7775936e+09
	// # TYPE renewkit_certificate_renew_at_timestamp_seconds gauge
	// renewkit_certificate_renew_at_timestamp_seconds{name="example.com"} 1.7750016e+09
}

// A one-shot program writes its metrics for node_exporter's textfile
// collector at the end of the run.
func ExampleWriteTextfile() {
	dir, err := os.MkdirTemp("", "textfile")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	reg := prometheus.NewRegistry()
	c := metrics.New()
	reg.MustRegister(c)
	c.Finished(renew.Result{Name: "example.com", Outcome: renew.Failed, Failures: 1,
		RetryNotBefore: time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)})

	// In production: /var/lib/node_exporter/textfile_collector/renewkit.prom
	path := filepath.Join(dir, "renewkit.prom")
	if err := metrics.WriteTextfile(path, reg); err != nil {
		fmt.Println(err)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Comments, and the time of the last run (now), left out.
		if !strings.HasPrefix(sc.Text(), "#") && !strings.Contains(sc.Text(), "last_run_timestamp") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// renewkit_deploy_hooks_pending{name="example.com"} 0
	// renewkit_lock_held_seconds{name="example.com"} 0
	// renewkit_renewal_consecutive_failures{name="example.com"} 1
	// renewkit_renewal_last_run_ok{name="example.com"} 0
	// renewkit_renewal_retry_not_before_timestamp_seconds{name="example.com"} 1.7723448e+09
	// renewkit_renewal_runs_total{name="example.com",outcome="failed"} 1
}
