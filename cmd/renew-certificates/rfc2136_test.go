package main

import (
	"errors"
	"net"
	"strings"
	"testing"

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

// TestRFC2136CheckAnswers: the answers BIND does not give in TestBIND
// (another server may) are told apart: a clock off (BADTIME), an unsigned
// NOTAUTH to a signed update, and a server failure, which is not local.
func TestRFC2136CheckAnswers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer func(req *dns.Msg) *dns.Msg
		local  bool
		want   string
	}{
		{"badtime", func(req *dns.Msg) *dns.Msg {
			r := new(dns.Msg).SetRcode(req, dns.RcodeNotAuth)
			ts := req.IsTsig()
			r.Extra = append(r.Extra, &dns.TSIG{Hdr: dns.RR_Header{Name: ts.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
				Algorithm: ts.Algorithm, TimeSigned: ts.TimeSigned, Fudge: ts.Fudge, OrigId: req.Id, Error: dns.RcodeBadTime})
			return r
		}, true, "clock"},
		{"unsigned notauth", func(req *dns.Msg) *dns.Msg { return new(dns.Msg).SetRcode(req, dns.RcodeNotAuth) }, true, "without a TSIG record"},
		{"servfail", func(req *dns.Msg) *dns.Msg { return new(dns.Msg).SetRcode(req, dns.RcodeServerFailure) }, false, "SERVFAIL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := startCannedNameserver(t, tt.answer)
			p, err := providerWithEnv("rfc2136", map[string]string{
				"RFC2136_NAMESERVER": addr, "RFC2136_TSIG_KEY": "k", "RFC2136_TSIG_SECRET": "c2VjcmV0",
				"RFC2136_TSIG_ALGORITHM": "hmac-sha256.", "RFC2136_ZONES": "example.test", "RFC2136_DNS_TIMEOUT": "2",
			})
			if err != nil {
				t.Fatal(err)
			}
			rp := p.(*rfc2136Provider)
			rp.domains = []string{"a.example.test"}
			err = rp.Preflight(t.Context())
			var le *renew.LocalError
			if err == nil || errors.As(err, &le) != tt.local || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Preflight = %v, want local %v and %q", err, tt.local, tt.want)
			}
		})
	}
}
