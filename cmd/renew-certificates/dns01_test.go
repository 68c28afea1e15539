package main

import (
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/renewkit/renewkit/internal/testacme"
)

// startUpdateServer runs a DNS server on loopback that accepts RFC 2136
// updates of TXT records and applies them to the CA's DNS responder, the
// way a primary nameserver would publish them.
func startUpdateServer(t *testing.T, dnsr *testacme.DNSResponder) (addr string, updates func() int) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(m)
		if m.Opcode != dns.OpcodeUpdate {
			r.Rcode = dns.RcodeRefused
			w.WriteMsg(r)
			return
		}
		mu.Lock()
		n++
		mu.Unlock()
		for _, rr := range m.Ns {
			h := rr.Header()
			txt, isTXT := rr.(*dns.TXT)
			switch {
			case h.Class == dns.ClassANY && h.Rrtype == dns.TypeTXT: // delete the RRset
				dnsr.SetTXT(h.Name)
			case isTXT && h.Class == dns.ClassNONE: // delete one RR
				dnsr.RemoveTXT(h.Name, strings.Join(txt.Txt, ""))
			case isTXT && h.Class == dns.ClassINET: // add
				dnsr.AddTXT(h.Name, strings.Join(txt.Txt, ""))
			}
		}
		w.WriteMsg(r)
	})}
	// miekg/dns answers NOTIMP to UPDATE unless told to accept it.
	srv.MsgAcceptFunc = func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// TestDNS01RFC2136 issues through lego's rfc2136 provider, configured by the
// challenge's env table, against a loopback nameserver.
func TestDNS01RFC2136(t *testing.T) {
	// lego's provider looks up CNAMEs of the challenge name through the
	// system resolver unless told not to (the zone is given, so it makes
	// no other query).
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
	ca := startCA(t)
	ns, updates := startUpdateServer(t, ca.DNS())
	env := newEnv(t, ca, `type = "dns-01"
provider = "rfc2136"
env = { RFC2136_NAMESERVER = "`+ns+`", RFC2136_ZONES = "example.test" }
resolvers = ["`+ca.DNSAddr()+`"]`,
		`name = "d"`+"\n"+`domains = ["d.example.test", "www.d.example.test"]`)
	_, log := env.mustRun(t, exitOK)
	if got := summaries(log); got["d"] != "renewed" {
		t.Fatalf("summaries = %v\n%s", got, log)
	}
	checkLineage(t, env, "d")
	if n := updates(); n < 4 {
		t.Errorf("%d DNS updates, want at least 4 (present and clean up, 2 names)", n)
	}
	if v := ca.DNS().TXT("_acme-challenge.d.example.test."); len(v) != 0 {
		t.Errorf("TXT record left behind: %v", v)
	}
	if v, set := os.LookupEnv("RFC2136_NAMESERVER"); set {
		t.Errorf("the env table leaked into the process environment: %q", v)
	}
}

// TestDNSProviderCredentialsMissing: a provider that cannot be built is a
// configuration error, reported before anything is done.
func TestDNSProviderCredentialsMissing(t *testing.T) {
	for _, v := range []string{"CLOUDFLARE_DNS_API_TOKEN", "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "CF_DNS_API_TOKEN", "CF_API_EMAIL", "CF_API_KEY",
		"CLOUDFLARE_DNS_API_TOKEN_FILE", "CLOUDFLARE_EMAIL_FILE", "CLOUDFLARE_API_KEY_FILE"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	ca := startCA(t)
	env := newEnv(t, ca, `type = "dns-01"`+"\n"+`provider = "cloudflare"`, `name = "c"`+"\n"+`domains = ["c.example.test"]`)
	code, _, log := env.run(t, t.Context())
	if code != exitUsage || !strings.Contains(log, `config.toml:12: certificate "c": challenge: dns-01 provider cloudflare:`) || !strings.Contains(log, "env table") {
		t.Errorf("exit %d\n%s", code, log)
	}
	if n := ca.Stats().Orders; n != 0 {
		t.Errorf("%d orders", n)
	}
}

// TestAPIProvidersNameTheirCredentials: every API provider of this build
// gives acmeissuer the settings to check when its API refuses the
// credentials (acmeissuer's TestAPIProviderCredentialsRefused shows the
// refusal is then a local failure naming them).
func TestAPIProvidersNameTheirCredentials(t *testing.T) {
	for _, p := range dnsProviderTable() {
		switch name := p.Code; {
		case name == "rfc2136", name == "dnsupdate", name == "exec":
			continue // no API credentials: rfc2136 explains its own refusals
		case p.New != nil && len(p.Credentials) == 0:
			continue // lego's metadata names none (lightsail: AWS's chain)
		default:
			if fix := credentialsFixFor(name); !strings.Contains(fix, "env.") {
				t.Errorf("%s: credentials fix %q names no setting", name, fix)
			}
		}
	}
}
