package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/renewkit/renewkit/metrics"
	"github.com/renewkit/renewkit/renew"
)

// metricsSink collects a run's metrics for -metrics-file.
type metricsSink struct {
	path      string
	collector *metrics.Collector
	reg       *prometheus.Registry
}

func newMetricsSink(path string) *metricsSink {
	c := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return &metricsSink{path: path, collector: c, reg: reg}
}

// prime takes the state of every configured lineage from disk, so that the
// file describes all of them: those this run skips (-cert) or finds locked
// by another run too. The run's Results then update what it touched.
func (m *metricsSink) prime(r *renew.Renewer, all []renew.Certificate) {
	m.collector.Track(all...)
	m.collector.ObserveStatus(r.Status(all...)...)
}

// write replaces the textfile atomically.
func (m *metricsSink) write() error {
	return metrics.WriteTextfile(m.path, m.reg)
}
