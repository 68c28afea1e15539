//go:build renewkit_crashpoints

package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

const enabled = true

// EnvVar selects the crash point: "NAME" or "NAME#N".
const EnvVar = "RENEWKIT_CRASH_AT"

// TraceEnvVar, when set to a file path, makes every Hit append its name to
// that file (so a test can enumerate the crash points a run passes through).
const TraceEnvVar = "RENEWKIT_CRASH_TRACE"

var (
	once   sync.Once
	target string
	nth    int64
	count  atomic.Int64
	trace  *os.File
	mu     sync.Mutex
)

func setup() {
	v := os.Getenv(EnvVar)
	target, nth = v, 1
	if i := strings.LastIndexByte(v, '#'); i >= 0 {
		if n, err := strconv.ParseInt(v[i+1:], 10, 64); err == nil && n > 0 {
			target, nth = v[:i], n
		}
	}
	if p := os.Getenv(TraceEnvVar); p != "" {
		trace, _ = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	}
}

// Hit SIGKILLs the process when scope.step is the configured crash point.
func Hit(scope, step string) {
	once.Do(setup)
	name := scope + "." + step
	if trace != nil {
		mu.Lock()
		trace.WriteString(name + "\n")
		mu.Unlock()
	}
	if target == "" || name != target {
		return
	}
	if count.Add(1) == nth {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is delivered before this returns control
	}
}
