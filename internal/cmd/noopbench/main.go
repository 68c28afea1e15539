// Command noopbench measures the run a twice-daily timer does almost every
// time: renew-certificates over a configuration of N lineages, every one
// installed and none due. It reports whole-process wall time and peak RSS
// of the CLI, as a systemd timer would see them, beside the same binary's
// -version (the cost of starting the process at all: loading, package
// initialisation), and their ratio.
//
//	go run ./internal/cmd/noopbench                         # -n 1,100,10000 -runs 15
//	go run ./internal/cmd/noopbench -bin old,new -n 1,100   # two builds side by side
//
// Run it from the repository root. It builds the CLI (cmd/renew-certificates)
// unless -bin names binaries, obtains one certificate from the in-process
// test CA, fetches its ARI window once (so the lineage's state is fresh, as
// after a normal day), clones that lineage N times (hard links: generations
// are immutable), and writes a configuration listing them that names a
// ca_file (the test CA's certificate, as a private CA's configuration
// would) and an HTTP-01 listener. The CA is gone by then: a run that
// contacted it would fail, so a clean exit also proves the no-op run sends
// nothing.
//
// Each round runs, for every binary in turn, the nothing-due run (at the
// default log level, JSON logs as the systemd unit writes them, discarded)
// and then -version, so that a load spike on the machine hits all of them
// alike; the first round is a warm-up. Wall times are whole-process (fork,
// exec, exit) as seen by the parent; peak RSS is the child's ru_maxrss.
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
	sizes := flag.String("n", "1,100,10000", "comma-separated numbers of lineages")
	runs := flag.Int("runs", 15, "measured rounds per size (after one warm-up round)")
	bins := flag.String("bin", "", "comma-separated renew-certificates binaries to compare (default: build cmd/renew-certificates)")
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

	var programs []string
	if *bins == "" {
		bin := filepath.Join(work, "renew-certificates")
		// The CLI is a module of its own: build it from its directory.
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = filepath.Join("cmd", "renew-certificates")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			log.Fatalf("build the CLI (run from the repository root): %v", err)
		}
		programs = []string{bin}
	} else {
		for _, b := range strings.Split(*bins, ",") {
			abs, err := filepath.Abs(strings.TrimSpace(b))
			if err != nil {
				log.Fatal(err)
			}
			programs = append(programs, abs)
		}
	}
	template := filepath.Join(work, "template")
	caFile, err := oneLineage(template)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%-9s %-22s %5s %10s %10s %10s %10s %7s %9s\n",
		"lineages", "binary", "runs", "run p50", "run min", "run max", "-version", "ratio", "peak RSS")
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("bad -n %q", f)
		}
		cfg, err := fixture(work, template, caFile, n)
		if err != nil {
			log.Fatal(err)
		}
		type series struct {
			run, version []time.Duration
			rss          int64 // KiB
		}
		res := make([]series, len(programs))
		for round := 0; round <= *runs; round++ {
			for i, bin := range programs {
				wall, rss, err := measure(bin, "-config", cfg, "-log-format", "json")
				if err != nil {
					log.Fatalf("%s with %d lineages: %v", bin, n, err)
				}
				vwall, _, err := measure(bin, "-version")
				if err != nil {
					log.Fatalf("%s -version: %v", bin, err)
				}
				if round == 0 {
					continue // warm-up: page cache, binary
				}
				res[i].run = append(res[i].run, wall)
				res[i].version = append(res[i].version, vwall)
				res[i].rss = max(res[i].rss, rss)
			}
		}
		for i, bin := range programs {
			r := res[i]
			slices.Sort(r.run)
			slices.Sort(r.version)
			p50, v50 := r.run[len(r.run)/2], r.version[len(r.version)/2]
			fmt.Printf("%-9d %-22s %5d %10s %10s %10s %10s %7.2f %6.1f MiB\n", n, label(bin), len(r.run),
				ms(p50), ms(r.run[0]), ms(r.run[len(r.run)-1]), ms(v50),
				float64(p50)/float64(v50), float64(r.rss)/1024)
		}
	}
}

// measure runs bin with args, its output discarded, and returns its wall
// time and peak RSS (KiB).
func measure(bin string, args ...string) (time.Duration, int64, error) {
	cmd := exec.Command(bin, args...)
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, err
	}
	wall := time.Since(t0)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss // KiB on Linux
	}
	return wall, rss, nil
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// label is a binary's name for the table: its last two path elements.
func label(bin string) string {
	l := filepath.Join(filepath.Base(filepath.Dir(bin)), filepath.Base(bin))
	if len(l) > 22 {
		l = "…" + l[len(l)-21:]
	}
	return l
}

// oneLineage issues one certificate into dir/l0, runs the Renewer once more
// so that its ARI window is fetched and recorded, and writes the CA's TLS
// certificate to dir/ca.pem, whose path it returns.
func oneLineage(dir string) (string, error) {
	ca, err := testacme.Start(testacme.Options{AlwaysValid: true, Profiles: map[string]time.Duration{"shortlived": 0}})
	if err != nil {
		return "", err
	}
	defer ca.Close()
	ctx := context.Background()
	iss, err := acmeissuer.New(ctx, acmeissuer.Config{DirectoryURL: ca.DirectoryURL(), AgreeTOS: true,
		AccountDir: filepath.Join(dir, "account"), HTTPClient: ca.HTTPClient, HTTP01: &acmeissuer.HTTP01{}})
	if err != nil {
		return "", err
	}
	defer iss.Close()
	r := &renew.Renewer{Root: dir, Issuer: iss}
	c := renew.Certificate{Name: "l0", Domains: []string{"bench.example.test"}}
	for _, want := range []renew.Outcome{renew.Renewed, renew.NotDue} {
		if res := r.Run(ctx, c)[0]; res.Outcome != want {
			return "", fmt.Errorf("fixture: %v, want %s", res, want)
		}
	}
	caFile := filepath.Join(dir, "ca.pem")
	return caFile, os.WriteFile(caFile, ca.CAPEM(), 0o644)
}

// fixture makes n lineages under work/nN and a configuration listing them.
func fixture(work, template, caFile string, n int) (string, error) {
	root := filepath.Join(work, fmt.Sprintf("n%d", n))
	cfg := filepath.Join(work, fmt.Sprintf("n%d.toml", n))
	if _, err := os.Stat(cfg); err == nil {
		return cfg, nil // made by an earlier size list entry
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	var b strings.Builder
	// The CA is gone: any request to it would fail the run.
	fmt.Fprintf(&b, "server = %q\nca_file = %q\nagree_tos = true\nroot = %q\naccount_dir = %q\n\n",
		"https://127.0.0.1:9/dir", caFile, root, filepath.Join(work, "account"))
	b.WriteString("[defaults.challenge]\ntype = \"http-01\"\nlisten = \"127.0.0.1:9\"\n\n")
	for i := range n {
		name := fmt.Sprintf("l%d", i)
		if err := lineagefix.Clone(filepath.Join(template, "l0"), filepath.Join(root, name)); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "[[certificate]]\nname = %q\ndomains = [\"bench.example.test\"]\n\n", name)
	}
	return cfg, os.WriteFile(cfg, []byte(b.String()), 0o644)
}
