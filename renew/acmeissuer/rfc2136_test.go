package acmeissuer

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

func testRFC2136(t *testing.T, addr string) *RFC2136 {
	t.Helper()
	p := &RFC2136{Nameserver: addr, TSIGKey: "k", TSIGSecret: "c2VjcmV0", TSIGAlgorithm: "hmac-sha256.",
		Zones: []string{"example.test"}, DNSTimeout: 2 * time.Second}
	if err := p.check(""); err != nil {
		t.Fatal(err)
	}
	return p
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
			err := p.diagnose(t.Context(), "_acme-challenge.a.example.test.")
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
	p.DNSTimeout = 200 * time.Millisecond
	if err := p.PreflightNames(t.Context(), []string{"a.example.test"}); err != nil {
		t.Errorf("PreflightNames with the nameserver down = %v, want nil (not a local problem)", err)
	}
	err = p.Present(t.Context(), "a.example.test", "token", "token.thumb")
	if err == nil || errors.Is(err, renew.ErrLocal) {
		t.Fatalf("Present = %v, want a failure that is not local", err)
	}
	if !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "*acmeissuer") {
		t.Errorf("Present = %v, want the nameserver's address and no Go type", err)
	}
	d := &DNS01{Provider: p}
	if got := providerName(d); got != "DNS-01 provider rfc2136 nameserver "+addr {
		t.Errorf("providerName = %q", got)
	}
}

// updateServer is a primary nameserver for one zone that applies signed
// RFC 2136 updates of TXT records, as BIND would. Safe for concurrent use.
type updateServer struct {
	zone string
	mu   sync.Mutex
	txt  map[string][]string // owner name → values
}

func (u *updateServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	r := new(dns.Msg).SetReply(req)
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case req.Opcode == dns.OpcodeQuery && req.Question[0].Qtype == dns.TypeSOA:
		soa := &dns.SOA{Hdr: dns.RR_Header{Name: u.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60}, Ns: "ns." + u.zone, Mbox: "admin." + u.zone, Serial: 1}
		r.Ns = append(r.Ns, soa)
	case req.Opcode == dns.OpcodeUpdate:
		if t := req.IsTsig(); t == nil || w.TsigStatus() != nil {
			// As BIND answers a signature it cannot verify: NOTAUTH
			// with an unsigned TSIG record saying BADSIG.
			r.SetRcode(req, dns.RcodeNotAuth)
			if t != nil {
				r.Extra = append(r.Extra, &dns.TSIG{Hdr: dns.RR_Header{Name: t.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
					Algorithm: t.Algorithm, TimeSigned: t.TimeSigned, Fudge: t.Fudge, OrigId: req.Id, Error: dns.RcodeBadSig})
			}
			w.WriteMsg(r)
			return
		}
		for _, rr := range req.Ns {
			name := strings.ToLower(rr.Header().Name)
			switch rr.Header().Class {
			case dns.ClassANY: // delete the RRset
				delete(u.txt, name)
			case dns.ClassNONE: // delete one value
				v := strings.Join(rr.(*dns.TXT).Txt, "")
				u.txt[name] = slices.DeleteFunc(u.txt[name], func(x string) bool { return x == v })
			default:
				u.txt[name] = append(u.txt[name], strings.Join(rr.(*dns.TXT).Txt, ""))
			}
		}
	}
	if t := req.IsTsig(); t != nil {
		r.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
	}
	w.WriteMsg(r)
}

func (u *updateServer) values(name string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.txt[name])
}

// TestRFC2136UpdatesRecords: Present replaces the record's TXT set with
// its value, signed; CleanUp removes only its own value; the zone is found
// by the nameserver's SOA answer; a wrong secret is explained as BADSIG by
// the diagnosis, naming the setting through Setting.
func TestRFC2136UpdatesRecords(t *testing.T) {
	const secret = "c2VjcmV0c2VjcmV0c2VjcmV0"
	us := &updateServer{zone: "example.test.", txt: map[string][]string{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: us, TsigSecret: map[string]string{"k.": secret},
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	p := &RFC2136{Nameserver: pc.LocalAddr().String(), TSIGKey: "k", TSIGSecret: secret, DNSTimeout: 2 * time.Second}
	const name = "_acme-challenge.a.example.test."
	us.mu.Lock()
	us.txt[name] = []string{"stale"}
	us.mu.Unlock()
	if err := p.Present(t.Context(), "a.example.test", "t1", "t1.thumb"); err != nil {
		t.Fatalf("Present: %v", err)
	}
	_, v1 := dns01Record("a.example.test", "t1.thumb")
	if got := us.values(name); !slices.Equal(got, []string{v1}) {
		t.Fatalf("after Present: %q, want only %q", got, v1)
	}
	// Another value present meanwhile (another order's) survives CleanUp.
	us.mu.Lock()
	us.txt[name] = append(us.txt[name], "other")
	us.mu.Unlock()
	if err := p.CleanUp(t.Context(), "a.example.test", "t1", "t1.thumb"); err != nil {
		t.Fatalf("CleanUp: %v", err)
	}
	if got := us.values(name); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("after CleanUp: %q, want only the other value", got)
	}

	// A wrong secret: the server cannot verify the signature.
	bad := *p
	bad.TSIGSecret = "d3Jvbmd3cm9uZ3dyb25n"
	bad.Setting = func(f string) string { return map[string]string{"TSIGSecret": "env.RFC2136_TSIG_SECRET"}[f] }
	err = bad.Present(t.Context(), "a.example.test", "t2", "t2.thumb")
	if !errors.Is(err, renew.ErrLocal) || !strings.Contains(err.Error(), "env.RFC2136_TSIG_SECRET") {
		t.Errorf("Present with a wrong secret: %v, want a local error naming the setting", err)
	}
}
