package testacme

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// DNSResponder is a tiny authoritative-and-recursive-looking DNS server on
// 127.0.0.1 (the same port over UDP and TCP). It answers A 127.0.0.1 for every
// name, nothing (NOERROR, empty) for AAAA and every other type, and TXT from
// the records set through [DNSResponder.AddTXT] and friends. It never forwards
// a query anywhere, so nothing that uses it leaves the machine.
//
// A [Server] starts its own responder unless [Options.DNS] names a shared one.
// Share one when a DNS-01 client must see the same records as the CA: lego's
// DNS-01 code resolves through a process-wide client, which a test binary can
// point at one responder in TestMain:
//
//	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{
//		RecursiveNameservers: []string{responder.Addr()},
//	}))
//
// All methods are safe for concurrent use.
type DNSResponder struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu  sync.RWMutex
	txt map[string][]string // canonical FQDN → values, in insertion order

	closeOnce sync.Once
	closeErr  error
}

// StartDNS starts a [DNSResponder] on a free 127.0.0.1 port. Close it when done.
func StartDNS() (*DNSResponder, error) {
	pc, ln, err := listenSamePort()
	if err != nil {
		return nil, fmt.Errorf("testacme: dns responder: %w", err)
	}
	d := &DNSResponder{addr: ln.Addr().String(), txt: make(map[string][]string)}
	h := dns.HandlerFunc(d.serveDNS)
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	d.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(udpUp) }}
	d.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { close(tcpUp) }}
	udpErr, tcpErr := make(chan error, 1), make(chan error, 1)
	go func() { udpErr <- d.udp.ActivateAndServe() }()
	go func() { tcpErr <- d.tcp.ActivateAndServe() }()
	// Wait for both: ShutdownContext refuses a server that has not started.
	for _, w := range []struct {
		up   chan struct{}
		errc chan error
		srv  *dns.Server
	}{{udpUp, udpErr, d.udp}, {tcpUp, tcpErr, d.tcp}} {
		select {
		case <-w.up:
		case err := <-w.errc:
			_ = pc.Close()
			_ = ln.Close()
			return nil, fmt.Errorf("testacme: dns responder on %s: %w", d.addr, err)
		}
	}
	return d, nil
}

// listenSamePort binds UDP and TCP on one free 127.0.0.1 port: resolvers are
// given one address and try UDP first, TCP on truncation (Pebble's VA is
// TCP-only).
//
// The port comes from the kernel's choice for UDP, which knows nothing of
// TCP: it may be a TCP port that another test reserved with loopport (bound,
// not listening) for a challenge listener or an etcd member to listen on
// later. A Go listener (SO_REUSEADDR) would bind and listen on it anyway,
// and that other test's listener would then fail "address already in use",
// or its peer would reach this responder. So the TCP side is bound without
// SO_REUSEADDR, which any other socket bound to the port refuses, and
// another port is tried.
func listenSamePort() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := listenTCPExclusive(pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		lastErr = err
		_ = pc.Close()
	}
	return nil, nil, fmt.Errorf("no port free for both UDP and TCP: %w", lastErr)
}

// listenTCPExclusive listens on addr without SO_REUSEADDR (which net.Listen
// sets), so that binding fails while any other socket is bound to the port.
func listenTCPExclusive(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = setNoReuseAddr(fd)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp4", addr)
}

// Addr returns "127.0.0.1:PORT", valid for UDP and TCP.
func (d *DNSResponder) Addr() string { return d.addr }

// AddTXT adds value to the TXT records of name (a trailing dot is optional;
// case is ignored). Adding a value that is already present does nothing, so
// a wildcard and its base name, which share one record name, can each add
// their own value.
func (d *DNSResponder) AddTXT(name, value string) {
	key := canonicalName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !slices.Contains(d.txt[key], value) {
		d.txt[key] = append(d.txt[key], value)
	}
}

// RemoveTXT removes value from the TXT records of name, leaving other values.
func (d *DNSResponder) RemoveTXT(name, value string) {
	key := canonicalName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	vals := slices.DeleteFunc(d.txt[key], func(v string) bool { return v == value })
	if len(vals) == 0 {
		delete(d.txt, key)
		return
	}
	d.txt[key] = vals
}

// SetTXT replaces all TXT values of name; no values deletes the record.
func (d *DNSResponder) SetTXT(name string, values ...string) {
	key := canonicalName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(values) == 0 {
		delete(d.txt, key)
		return
	}
	d.txt[key] = slices.Clone(values)
}

// TXT returns a copy of the TXT values of name.
func (d *DNSResponder) TXT(name string) []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.txt[canonicalName(name)])
}

// Close stops both listeners and waits for in-flight queries. Idempotent.
func (d *DNSResponder) Close() error {
	d.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.closeErr = errors.Join(d.udp.ShutdownContext(ctx), d.tcp.ShutdownContext(ctx))
		if d.closeErr != nil {
			d.closeErr = fmt.Errorf("testacme: dns responder %s: close: %w", d.addr, d.closeErr)
		}
	})
	return d.closeErr
}

func canonicalName(name string) string {
	return dns.Fqdn(strings.ToLower(name))
}

func (d *DNSResponder) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	for _, q := range req.Question {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 0}
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeTXT:
			for _, v := range d.TXT(q.Name) {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: splitTXT(v)})
			}
		}
		// AAAA and everything else: NOERROR, no answer. Pebble's VA dials the
		// first address it gets, AAAA first, so an AAAA answer would send it to
		// [::1] where nothing listens.
	}
	if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size) // sets TC when it had to drop records; the client retries over TCP
	}
	_ = w.WriteMsg(m)
}

// splitTXT cuts a value into the 255-octet character-strings of RFC 1035.
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}
