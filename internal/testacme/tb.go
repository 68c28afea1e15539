package testacme

import (
	"bytes"
	"log/slog"
)

// TB is the part of testing.TB that [New] uses; *testing.T and *testing.B
// satisfy it. (An interface keeps package testing out of non-test binaries
// such as the CLI's -demo mode.)
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// New starts a server for a test or benchmark, fails t if it cannot start,
// and closes it in t.Cleanup (a Close error fails t too).
func New(t TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("testacme: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Fatalf("testacme: %v", err)
		}
	})
	return s
}

// Logf is the logging method of testing.TB.
type Logf interface {
	Logf(format string, args ...any)
}

// TBLogger returns a logger that writes text records through t.Logf, for
// Options.Logger ("when asked": pass it in verbose tests). A Server stops
// logging when closed, so with [New] nothing is logged after the test ends.
func TBLogger(t Logf) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ t Logf }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimSuffix(p, []byte("\n")))
	return len(p), nil
}
