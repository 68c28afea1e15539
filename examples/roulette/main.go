// Command roulette kills certificate renewals at random instants and shows
// that nothing a web server reads is ever broken by it: renewkit's promise,
// demonstrated on your machine in under a minute.
//
//	go run ./examples/roulette          # 100 renewals, each SIGKILLed at a random instant
//	go run ./examples/roulette -n 2000  # longer
//
// It starts an ACME CA (Let's Encrypt's Pebble) inside this process, on
// loopback only, and issues one certificate. Then, again and again, it
// starts a renewal in a child process — this same program in a hidden mode,
// running renewkit's Renewer with its ACME issuer, exactly as the
// renew-certificates CLI does — and kills it with SIGKILL after a delay drawn
// uniformly within a renewal's typical duration: before it ordered, while the
// CA validated, after the CA issued, while the files were written, during
// the swap, while the deploy hook ran. Meanwhile two readers in this process
// read the served files without pause: one the way nginx does at reload
// (fullchain.pem, then privkey.pem), one the way HAProxy does (combined.pem).
//
// At the end one renewal runs to completion, and the program prints what
// happened: kills, inconsistent reads per kind of reader, recoveries,
// certificates issued, deploy-hook runs. It exits 0 when the promise held:
//
//   - no read of combined.pem was ever inconsistent, and no file was ever
//     missing or partial for either reader;
//   - every generation that was ever served had its deploy hook run;
//   - every certificate the CA issued was installed (none wasted);
//   - nothing is left behind in the lineage directory.
//
// A reader of two files can still get the certificate of one generation and
// the key of the next if it reads exactly across the swap; the program counts
// those straddles for the nginx reader and reports them rather than failing
// on them: that is why combined.pem exists.
//
// It needs a Unix system (SIGKILL, flock) and writes only into a new
// temporary directory (or -root DIR), which it removes unless -keep is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Hidden first arguments select the child roles of this program.
const (
	childFlag = "-roulette-child"
	hookFlag  = "-roulette-hook"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case childFlag:
			os.Exit(child(os.Args[2:], os.Stdout, os.Stderr))
		case hookFlag:
			os.Exit(hook(os.Args[2:], os.Stderr))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses the command line and plays.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("roulette", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.n, "n", 100, "number of renewals to kill")
	fs.StringVar(&o.root, "root", "", "directory to play in (default: a new temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the directory afterwards")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the kill delays (0: random)")
	fs.BoolVar(&o.verbose, "v", false, "print one line per renewal")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: roulette [-n N] [-root DIR] [-keep] [-seed S] [-v]\n\n"+
			"Kills N certificate renewals with SIGKILL at random instants while readers check\n"+
			"the served files, then prints the tally. Runs an ACME CA in-process, loopback only.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || o.n < 1 {
		fs.Usage()
		return 2
	}
	sum, err := play(ctx, o, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "roulette: %v\n", err)
		return 1
	}
	sum.print(stdout)
	if !sum.held() {
		return 1
	}
	return 0
}
