package acmeissuer

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/miekg/dns"

	"github.com/renewkit/renewkit/renew"
)

// startCannedNameserver answers every UDP query with answer(request),
// packed as is (unsigned: a TSIG record in it is sent as built), the way a
// nameserver reports TSIG errors.
func startCannedNameserver(t *testing.T, answer func(req *dns.Msg) *dns.Msg) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := new(dns.Msg)
			if req.Unpack(buf[:n]) != nil {
				continue
			}
			out, err := answer(req).Pack()
			if err != nil {
				continue
			}
			pc.WriteTo(out, from)
		}
	}()
	return pc.LocalAddr().String()
}

// tsigError answers with a TSIG error, as a nameserver does.
func tsigError(rcode, tsigErr int) func(req *dns.Msg) *dns.Msg {
	return func(req *dns.Msg) *dns.Msg {
		r := new(dns.Msg).SetRcode(req, rcode)
		ts := req.IsTsig()
		r.Extra = append(r.Extra, &dns.TSIG{Hdr: dns.RR_Header{Name: ts.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
			Algorithm: ts.Algorithm, TimeSigned: ts.TimeSigned, Fudge: ts.Fudge, OrigId: req.Id, Error: uint16(tsigErr)})
		return r
	}
}

func testRFC2136(t *testing.T, addr string) *rfc2136Provider {
	t.Helper()
	cfg := dnsupdate.NewDefaultConfig()
	cfg.Nameserver = addr
	cfg.TSIGKey, cfg.TSIGSecret, cfg.TSIGAlgorithm = "k", "c2VjcmV0", "hmac-sha256."
	cfg.Zones = []string{"example.test"}
	cfg.DNSTimeout = 2 * time.Second
	p, err := NewRFC2136(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*rfc2136Provider)
}

// TestRFC2136CheckAnswers: the nameserver's answers to the no-op update
// are told apart, each with the fix that works for it: Knot's BADKEY for
// an update its ACL refuses (a known key) and PowerDNS's bare REFUSED for
// a wrong key name each server's policy, BIND's update-policy included; a
// clock off (BADTIME); an unsigned NOTAUTH; and a server failure, which is
// not local.
func TestRFC2136CheckAnswers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer func(req *dns.Msg) *dns.Msg
		local  bool
		want   []string
	}{
		{"badkey (Knot: acl refuses)", tsigError(dns.RcodeNotAuth, dns.RcodeBadKey), true,
			[]string{"BADKEY", "the nameserver refused the key", "or its update policy does not allow this key to update _acme-challenge.a.example.test.", "TSIGKey and TSIGAlgorithm", "Knot: an acl", "BIND: update-policy"}},
		{"refused (PowerDNS: wrong key)", func(req *dns.Msg) *dns.Msg { return new(dns.Msg).SetRcode(req, dns.RcodeRefused) }, true,
			[]string{"REFUSED", "the key is unknown there, or its update policy does not allow this name", "BIND: update-policy", "Knot: an acl", "PowerDNS: the zone's TSIG-ALLOW-DNSUPDATE", "Zones"}},
		{"badtime", tsigError(dns.RcodeNotAuth, dns.RcodeBadTime), true, []string{"clock"}},
		{"badsig", tsigError(dns.RcodeNotAuth, dns.RcodeBadSig), true, []string{"BADSIG", "set TSIGSecret"}},
		{"unsigned notauth", func(req *dns.Msg) *dns.Msg { return new(dns.Msg).SetRcode(req, dns.RcodeNotAuth) }, true, []string{"without a TSIG record"}},
		{"servfail", func(req *dns.Msg) *dns.Msg { return new(dns.Msg).SetRcode(req, dns.RcodeServerFailure) }, false, []string{"SERVFAIL"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testRFC2136(t, startCannedNameserver(t, tt.answer))
			err := p.check(t.Context(), "_acme-challenge.a.example.test.")
			if err == nil || errors.Is(err, renew.ErrLocal) != tt.local {
				t.Fatalf("check = %v, want local %v", err, tt.local)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("check = %v\nlacks %q", err, w)
				}
			}
			// The preflight reports the local ones and lets the others
			// pass (the order's update then fails and is retried).
			perr := p.PreflightNames(t.Context(), []string{"a.example.test"})
			if (perr != nil) != tt.local {
				t.Errorf("PreflightNames = %v, want an error %v", perr, tt.local)
			}
		})
	}
}

// TestRFC2136NameserverDown: a nameserver that does not answer when the
// run starts is not a local problem: the preflight passes, and the update
// fails with an error that is not local (so it is retried like any
// transient failure) and names the server's address, never a Go type.
func TestRFC2136NameserverDown(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing answers there now
	p := testRFC2136(t, addr)
	p.cfg.DNSTimeout = 200 * time.Millisecond
	if err := p.PreflightNames(t.Context(), []string{"a.example.test"}); err != nil {
		t.Errorf("PreflightNames with the nameserver down = %v, want nil (not a local problem)", err)
	}
	err = p.Present(t.Context(), "a.example.test", "token", "token.thumb")
	if err == nil || errors.Is(err, renew.ErrLocal) {
		t.Fatalf("Present = %v, want a failure that is not local", err)
	}
	if !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "*acmeissuer") || strings.Contains(err.Error(), "rfc2136Provider") {
		t.Errorf("Present = %v, want the nameserver's address and no Go type", err)
	}
	d := &DNS01{Provider: p}
	if got := providerName(d); got != "DNS-01 provider rfc2136 nameserver "+addr {
		t.Errorf("providerName = %q", got)
	}
}
