// Command noopbench measures the run a twice-daily timer does almost every
// time: renew-certificates over a configuration of N lineages, every one
// installed and none due. It reports whole-process wall time and peak RSS
// of the CLI, as a systemd timer would see them.
//
//	go run ./internal/cmd/noopbench -n 100,10000 -runs 20
//
// It builds the CLI, obtains one certificate from the in-process test CA,
// fetches its ARI window once (so the lineage's state is fresh, as after a
// normal day), clones that lineage N times (hard links: generations are
// immutable), writes a configuration listing them, and runs the CLI -runs
// times per N. The CA is gone by then: a run that contacted it would fail,
// so a clean exit also proves the no-op run sends nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/renewkit/renewkit/internal/lineagefix"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

func main() {
	sizes := flag.String("n", "100,10000", "comma-separated numbers of lineages")
	runs := flag.Int("runs", 15, "measured runs per size (after one warm-up)")
	keep := flag.String("keep", "", "build the fixture in this (new) directory and keep it, for profiling")
	flag.Parse()
	log.SetFlags(0)
	work := *keep
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "noopbench-"); err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(work)
	} else if err := os.Mkdir(work, 0o755); err != nil {
		log.Fatal(err)
	}

	work, err := filepath.Abs(work)
	if err != nil {
		log.Fatal(err)
	}
	bin := filepath.Join(work, "renew-certificates")
	// The CLI is a module of its own: build it from its directory.
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("cmd", "renew-certificates")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		log.Fatalf("build the CLI (run from the repository root): %v", err)
	}
	template := filepath.Join(work, "template")
	if err := oneLineage(template); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%-9s %-6s %12s %12s %12s %14s\n", "lineages", "runs", "wall p50", "wall min", "wall max", "peak RSS max")
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("bad -n %q", f)
		}
		cfg, err := fleet(work, template, n)
		if err != nil {
			log.Fatal(err)
		}
		var walls []time.Duration
		var rss int64
		for i := 0; i <= *runs; i++ {
			cmd := exec.Command(bin, "-config", cfg, "-log-level", "error")
			cmd.Stderr = os.Stderr
			t0 := time.Now()
			if err := cmd.Run(); err != nil {
				log.Fatalf("run with %d lineages: %v", n, err)
			}
			wall := time.Since(t0)
			if i == 0 {
				continue // warm-up: page cache, binary
			}
			walls = append(walls, wall)
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				rss = max(rss, ru.Maxrss) // KiB on Linux
			}
		}
		slices.Sort(walls)
		fmt.Printf("%-9d %-6d %12s %12s %12s %11.1f MB\n", n, len(walls),
			walls[len(walls)/2].Round(100*time.Microsecond), walls[0].Round(100*time.Microsecond),
			walls[len(walls)-1].Round(100*time.Microsecond), float64(rss)/1024)
	}
}

// oneLineage issues one certificate into dir/l0 and runs the Renewer once
// more so that its ARI window is fetched and recorded.
func oneLineage(dir string) error {
	ca, err := testacme.Start(testacme.Options{AlwaysValid: true, Profiles: map[string]time.Duration{"shortlived": 0}})
	if err != nil {
		return err
	}
	defer ca.Close()
	ctx := context.Background()
	iss, err := acmeissuer.New(ctx, acmeissuer.Config{DirectoryURL: ca.DirectoryURL(), AgreeTOS: true,
		AccountDir: filepath.Join(dir, "account"), HTTPClient: ca.HTTPClient, HTTP01: &acmeissuer.HTTP01{}})
	if err != nil {
		return err
	}
	defer iss.Close()
	r := &renew.Renewer{Root: dir, Issuer: iss}
	c := renew.Certificate{Name: "l0", Domains: []string{"bench.example.test"}}
	for _, want := range []renew.Outcome{renew.Renewed, renew.NotDue} {
		if res := r.Run(ctx, c)[0]; res.Outcome != want {
			return fmt.Errorf("fixture: %v, want %s", res, want)
		}
	}
	return nil
}

// fleet makes n lineages under work/nN and a configuration listing them.
func fleet(work, template string, n int) (string, error) {
	root := filepath.Join(work, fmt.Sprintf("n%d", n))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	var b strings.Builder
	// The CA is gone: any request to it would fail the run.
	fmt.Fprintf(&b, "server = %q\nagree_tos = true\nroot = %q\n\n", "https://127.0.0.1:9/dir", root)
	b.WriteString("[defaults.challenge]\ntype = \"http-01\"\nlisten = \"127.0.0.1:9\"\n\n")
	for i := range n {
		name := fmt.Sprintf("l%d", i)
		if err := lineagefix.Clone(filepath.Join(template, "l0"), filepath.Join(root, name)); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "[[certificate]]\nname = %q\ndomains = [\"bench.example.test\"]\n\n", name)
	}
	cfg := filepath.Join(work, fmt.Sprintf("n%d.toml", n))
	return cfg, os.WriteFile(cfg, []byte(b.String()), 0o644)
}
