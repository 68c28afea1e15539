package testacme_test

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
	legolog "github.com/go-acme/lego/v5/log"

	"github.com/renewkit/renewkit/internal/testacme"
)

// sharedDNS is the loopback responder lego's process-wide DNS client uses in
// this test binary (lego follows CNAMEs and checks DNS-01 propagation through
// it); DNS-01 tests start their servers with Options.DNS = sharedDNS so the CA
// and the client see the same records. Nothing resolves off the machine.
var sharedDNS *testacme.DNSResponder

func TestMain(m *testing.M) {
	// lego logs to stdout at Info through a global logger.
	legolog.SetDefault(slog.New(slog.DiscardHandler))
	var err error
	sharedDNS, err = testacme.StartDNS()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{
		RecursiveNameservers: []string{sharedDNS.Addr()},
		Timeout:              2 * time.Second,
	}))
	code := m.Run()
	_ = sharedDNS.Close()
	os.Exit(code)
}
