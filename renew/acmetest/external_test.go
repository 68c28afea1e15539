package acmetest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestExternalModule is what an importer does: a new Go module outside
// renewkit that requires it (replaced by this checkout), with this package's
// example file and the test template testdata/importer/renewal_test.go
// copied in as they are, runs `go test`. It proves the public test CA is
// usable from outside the module (internal/testacme is not) and that the
// documented files compile and renew there.
//
// It works offline: GOPROXY=off, so every module must already be in the
// module cache, which `go mod download` in this module fills (as .ci/run
// does). It is skipped only when no go command is on PATH.
func TestExternalModule(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH (%v): cannot build a module outside renewkit", err)
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		t.Fatalf("renewkit's go.mod not found two levels up: %v", err)
	}

	mod := t.TempDir()
	goMod := "module example.test/importer\n\ngo 1.26\n\n" +
		"require github.com/renewkit/renewkit v0.0.0-00010101000000-000000000000\n\n" +
		"replace github.com/renewkit/renewkit => " + strconv.Quote(repo) + "\n"
	writeFile(t, filepath.Join(mod, "go.mod"), []byte(goMod))
	// The checksums of everything renewkit requires; the importer's build
	// list is renewkit's.
	copyFile(t, filepath.Join(repo, "go.sum"), filepath.Join(mod, "go.sum"))
	copyFile(t, filepath.Join("testdata", "importer", "renewal_test.go"), filepath.Join(mod, "renewal_test.go"))
	copyFile(t, "example_test.go", filepath.Join(mod, "examples", "example_test.go"))

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	args := []string{"test", "-count=1"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-v", "./...")
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(),
		"GOFLAGS=-mod=mod", // add renewkit's requirements to the new go.mod
		"GOPROXY=off",      // offline: from the module cache only
		"GOSUMDB=off",      // go.sum above has the checksums
		"GOWORK=off",
		"GOTOOLCHAIN=local",
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("go %s in %s (%v):\n%s", strings.Join(args, " "), mod, time.Since(start).Round(time.Millisecond), out)
	if ctx.Err() != nil {
		t.Fatalf("go test in the external module did not finish within 5 minutes")
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && strings.Contains(string(out), "GOPROXY=off") {
			t.Fatalf("go test in the external module: a module is missing from the module cache; run `go mod download` in %s first: %v", repo, err)
		}
		t.Fatalf("go test in the external module: %v", err)
	}
	for _, want := range []string{"--- PASS: TestRenewal", "--- PASS: Example ", "ok  \texample.test/importer\t", "ok  \texample.test/importer/examples\t"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data)
}
