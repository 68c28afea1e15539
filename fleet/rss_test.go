package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// TestFigureJunkPeakRSS measures the peak RSS of a process whose only work
// is a nothing-due fleet run of one lineage, while 600 junk records of 60
// KB lie under the fleet's state prefix: the figure of issue 22 (the
// bound itself is asserted, deterministically, by TestAttackJunkRecords on
// the bytes read). The run is in a child process (this test binary), so
// that the embedded etcd does not count. Set RENEWKIT_FLEET_RSS=1.
func TestFigureJunkPeakRSS(t *testing.T) {
	if os.Getenv("RENEWKIT_RSS_CHILD") != "" {
		rssChild(t)
		return
	}
	if os.Getenv("RENEWKIT_FLEET_RSS") == "" {
		t.Skip("a figure: set RENEWKIT_FLEET_RSS=1")
	}
	cl := startCluster(t, 1)
	ca := acmetest.New(t, acmetest.Options{AlwaysValid: true})
	cfg := cl.config(t, "")
	nodes := startNodes(t, 1, cfg, ca)
	domains := []string{"rss.test"}
	if res := nodes[0].r.Run(t.Context(), nodes[0].cert(domains))[0]; res.Outcome != renew.Renewed {
		t.Fatalf("setup: %v", res)
	}
	c := nodes[0].r.Fleet.(*Client)
	measure := func(what string) int64 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFigureJunkPeakRSS$")
		cmd.Env = append(os.Environ(), "RENEWKIT_RSS_CHILD=1",
			"RSS_ENDPOINT="+cl.Endpoints()[0], "RSS_PREFIX="+cfg.Prefix, "RSS_SEAL="+cfg.SealKeyFile,
			"RSS_ROOT="+nodes[0].r.Root, "RSS_DOMAIN="+domains[0])
		out, err := cmd.CombinedOutput()
		_, hwm, ok := strings.Cut(string(out), "VmHWM:")
		if err != nil || !strings.Contains(string(out), "NOTDUE") || !ok {
			t.Fatalf("child: %v\n%s", err, out)
		}
		// The child's own peak (VmHWM of its address space after exec: the
		// rusage of a child counts the parent's pages it shared before).
		var kib int64
		fmt.Sscan(hwm, &kib)
		t.Logf("FIGURE peak RSS of a nothing-due fleet run of one lineage, %s: %.1f MiB", what, float64(kib)/1024)
		return kib
	}
	measure("no foreign records")
	junk := strings.Repeat("j", 60<<10)
	for i := 0; i < 600; i += 20 {
		var ops []clientv3.Op
		for j := i; j < i+20; j++ {
			ops = append(ops, clientv3.OpPut(c.keys.state(fmt.Sprintf("junk%04d", j), KindMeta), junk))
		}
		if _, err := c.cli.Txn(t.Context()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	measure("600 foreign records of 60 KB under the prefix")
}

// rssChild is the child of TestFigureJunkPeakRSS: one nothing-due run.
func rssChild(t *testing.T) {
	c, err := Dial(Config{Endpoints: []string{os.Getenv("RSS_ENDPOINT")}, Prefix: os.Getenv("RSS_PREFIX"),
		SealKeyFile: os.Getenv("RSS_SEAL"), Node: "rss", RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &renew.Renewer{Root: os.Getenv("RSS_ROOT"), Issuer: noIssuer{}, Fleet: c}
	res := r.Run(context.Background(), renew.Certificate{Name: "www", Domains: []string{os.Getenv("RSS_DOMAIN")}})[0]
	if res.Outcome != renew.NotDue {
		t.Fatalf("child run: %v", res)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			fmt.Println(l)
		}
	}
	fmt.Println("NOTDUE", filepath.Base(r.Root))
}

// noIssuer orders nothing: the runs it is used in are not due.
type noIssuer struct{}

var errNoIssuer = errors.New("no issuer in this test")

func (noIssuer) Issue(context.Context, renew.IssueRequest, func(context.Context, renew.InFlight) error) (*renew.Issued, error) {
	return nil, errNoIssuer
}

func (noIssuer) Resume(context.Context, renew.InFlight) (*renew.Issued, error) {
	return nil, errNoIssuer
}
