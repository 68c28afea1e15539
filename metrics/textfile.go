package metrics

import (
	"bytes"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/renewkit/renewkit/internal/durable"
)

// textfileMode is the mode of a textfile: node_exporter runs as another user.
const textfileMode = 0o644

// staleTempAge is how old a temporary file of an earlier WriteTextfile must
// be before WriteTextfile removes it: far longer than a write takes, so a
// concurrent writer's file is never removed under it.
const staleTempAge = time.Hour

// WriteTextfile gathers g and writes the metrics in the Prometheus text
// exposition format to path, for node_exporter's textfile collector
// (--collector.textfile.directory; the name must end in .prom).
//
// The steps:
//
//  1. Gather. On error nothing is written and the previous file stays, so
//     its metrics go stale (which the example alert rules detect) rather
//     than turn partial.
//  2. Encode every family into memory.
//  3. Replace path atomically and durably with mode 0644
//     (internal/durable.WriteFile: same-directory temporary file, fsync, rename,
//     fsync of the directory).
//  4. Remove temporary files of earlier writes to path that were killed
//     mid-way (.NAME followed by digits) once they are an hour old. This
//     is best effort: a failure is not reported, and the next write tries
//     again.
//
// The directory must exist and be writable. WriteTextfile is safe for
// concurrent use; concurrent writers to one path each replace the file
// whole, and the last rename wins.
func WriteTextfile(path string, g prometheus.Gatherer) error {
	// (1)
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("metrics: textfile %s: gather: %w", path, err)
	}
	// (2) Into a buffer sized for the whole text at once: growing it by
	// doubling costs more than the encoding for thousands of lineages.
	n := 0
	for _, mf := range mfs {
		n += 256 + 128*len(mf.GetMetric())
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(buf, mf); err != nil {
			return fmt.Errorf("metrics: textfile %s: encode %s: %w", path, mf.GetName(), err)
		}
	}
	// (3)
	if err := durable.WriteFile(path, buf.Bytes(), textfileMode); err != nil {
		return fmt.Errorf("metrics: textfile: %w", err)
	}
	// (4) Best effort, see above.
	_, _ = durable.RemoveTemps(path, time.Now().Add(-staleTempAge))
	return nil
}
