package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/miekg/dns"

	"github.com/renewkit/renewkit/internal/testacme"
)

// startSOAServer answers SOA queries on loopback for zone (lego's
// providers find the zone of a challenge name that way) and points lego's
// default DNS client at it for the test.
func startSOAServer(t *testing.T, zone string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(m)
		r.Authoritative = true
		for _, q := range m.Question {
			if q.Qtype == dns.TypeSOA && strings.EqualFold(q.Name, zone) {
				r.Answer = append(r.Answer, &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
					Ns: "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60})
			}
		}
		w.WriteMsg(r)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	prev := dns01.DefaultClient()
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{pc.LocalAddr().String()}}))
	t.Cleanup(func() {
		dns01.SetDefaultClient(prev)
		srv.Shutdown()
	})
}

// fakePDNS is a PowerDNS authoritative HTTP API (v1) for one zone, whose
// TXT records are published by the CA's DNS responder.
type fakePDNS struct {
	zone string
	dnsr *testacme.DNSResponder
	fail int // when set, every call answers this status with a PowerDNS error body

	mu      sync.Mutex
	patches int
	txt     map[string][]string // the zone's TXT records by name
}

func (f *fakePDNS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-API-Key") != "secret" {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": "Unauthorized"})
		return
	}
	if f.fail != 0 {
		w.WriteHeader(f.fail)
		json.NewEncoder(w).Encode(map[string]string{"error": "backend database is down"})
		return
	}
	zpath := "/api/v1/servers/localhost/zones/" + f.zone
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api":
		json.NewEncoder(w).Encode([]map[string]any{{"url": "/api/v1", "version": 1}})
	case r.Method == http.MethodGet && r.URL.Path == zpath:
		f.mu.Lock()
		sets := []map[string]any{}
		for name, vals := range f.txt {
			var recs []map[string]any
			for _, v := range vals {
				recs = append(recs, map[string]any{"content": strconv.Quote(v), "disabled": false})
			}
			sets = append(sets, map[string]any{"name": name, "type": "TXT", "ttl": 120, "records": recs})
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"id": f.zone, "name": f.zone, "url": zpath, "kind": "Native", "rrsets": sets})
	case r.Method == http.MethodPatch && r.URL.Path == zpath:
		var sets struct {
			RRSets []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				ChangeType string `json:"changetype"`
				Records    []struct {
					Content string `json:"content"`
				} `json:"records"`
			} `json:"rrsets"`
		}
		if err := json.NewDecoder(r.Body).Decode(&sets); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.patches++
		f.mu.Unlock()
		for _, s := range sets.RRSets {
			var vals []string
			for _, rec := range s.Records {
				v, err := strconv.Unquote(rec.Content)
				if err != nil {
					w.WriteHeader(http.StatusUnprocessableEntity)
					json.NewEncoder(w).Encode(map[string]string{"error": "bad TXT content " + rec.Content})
					return
				}
				vals = append(vals, v)
			}
			if s.ChangeType == "DELETE" {
				vals = nil
			}
			f.mu.Lock()
			if f.txt == nil {
				f.txt = map[string][]string{}
			}
			if len(vals) == 0 {
				delete(f.txt, s.Name)
			} else {
				f.txt[s.Name] = vals
			}
			f.mu.Unlock()
			f.dnsr.SetTXT(s.Name, vals...)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// TestDNS01PowerDNSAPI issues through lego's pdns provider (generated
// registry, built lazily) against a fake PowerDNS API on loopback, with
// the CA validating the TXT records it publishes.
func TestDNS01PowerDNSAPI(t *testing.T) {
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
	ca := startCA(t)
	startSOAServer(t, "example.test.")
	fake := &fakePDNS{zone: "example.test.", dnsr: ca.DNS()}
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	env := newEnv(t, ca, `type = "dns-01"
provider = "pdns"
env = { PDNS_API_URL = "`+api.URL+`", PDNS_API_KEY = "secret" }
resolvers = ["`+ca.DNSAddr()+`"]`,
		`name = "p"`+"\n"+`domains = ["p.example.test", "*.p.example.test"]`)
	_, log := env.mustRun(t, exitOK)
	if got := summaries(log); got["p"] != "renewed" {
		t.Fatalf("summaries = %v\n%s", got, log)
	}
	checkLineage(t, env, "p")
	if fake.patches < 4 {
		t.Errorf("%d record updates, want at least 4 (present and clean up, 2 names)", fake.patches)
	}
	if v := ca.DNS().TXT("_acme-challenge.p.example.test."); len(v) != 0 {
		t.Errorf("TXT record left behind: %v", v)
	}
}

// TestDNS01GeneratedMissingVars: a generated provider's missing required
// variables are a configuration error naming them, before any order.
func TestDNS01GeneratedMissingVars(t *testing.T) {
	for _, v := range []string{"PDNS_API_KEY", "PDNS_API_URL", "PDNS_API_KEY_FILE", "PDNS_API_URL_FILE"} {
		t.Setenv(v, "")
	}
	ca := startCA(t)
	env := newEnv(t, ca, `type = "dns-01"`+"\n"+`provider = "pdns"`+"\n"+`env = { PDNS_API_URL = "http://127.0.0.1:1" }`,
		`name = "p"`+"\n"+`domains = ["p.example.test"]`)
	code, _, log := env.run(t, t.Context())
	if code != exitUsage || !strings.Contains(log, "dns-01 provider pdns needs env.PDNS_API_KEY") || strings.Contains(log, "needs env.PDNS_API_URL") {
		t.Errorf("exit %d\n%s", code, log)
	}
	if n := ca.Stats().Orders; n != 0 {
		t.Errorf("%d orders", n)
	}
}

// TestGeneratedProviderAPIErrors: through the CLI, an API's refusal of
// the credentials is a local failure naming the variables to check and
// carrying the provider's message; a 5xx is not (it may pass: retried).
func TestGeneratedProviderAPIErrors(t *testing.T) {
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
	startSOAServer(t, "example.test.")
	for _, tt := range []struct {
		name, key string
		fail      int
		want      []string
		refused   bool
	}{
		{"refused", "wrong", 0, []string{"credentials refused", "env.PDNS_API_KEY", "Unauthorized"}, true},
		{"5xx", "secret", http.StatusServiceUnavailable, []string{"backend database is down"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ca := startCA(t)
			api := httptest.NewServer(&fakePDNS{zone: "example.test.", dnsr: ca.DNS(), fail: tt.fail})
			t.Cleanup(api.Close)
			env := newEnv(t, ca, `type = "dns-01"
provider = "pdns"
env = { PDNS_API_URL = "`+api.URL+`", PDNS_API_KEY = "`+tt.key+`" }
resolvers = ["`+ca.DNSAddr()+`"]`, `name = "p"`+"\n"+`domains = ["p.example.test"]`)
			code, _, log := env.run(t, t.Context())
			if code == exitOK {
				t.Fatalf("exit 0\n%s", log)
			}
			for _, w := range tt.want {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %q\n%s", w, log)
				}
			}
			if !tt.refused && strings.Contains(log, "credentials refused") {
				t.Errorf("a 5xx classified as refused credentials\n%s", log)
			}
		})
	}
}

// fakeTechnitium is a Technitium DNS Server HTTP API (records add and
// delete, form posts with a token), publishing through the CA's DNS
// responder.
type fakeTechnitium struct {
	dnsr *testacme.DNSResponder

	mu            sync.Mutex
	adds, deletes int
}

func (f *fakeTechnitium) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("token") != "secret" {
		json.NewEncoder(w).Encode(map[string]string{"status": "invalid-token", "errorMessage": "Invalid token or session expired."})
		return
	}
	name, typ, text := r.PostForm.Get("domain"), r.PostForm.Get("type"), r.PostForm.Get("text")
	if typ != "TXT" || name == "" || text == "" {
		json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorMessage": "bad record " + r.PostForm.Encode()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/api/zones/records/add":
		f.adds++
		f.dnsr.AddTXT(name, text)
		json.NewEncoder(w).Encode(map[string]any{"status": "ok", "response": map[string]any{"addedRecord": map[string]string{"name": name, "type": "TXT"}}})
	case "/api/zones/records/delete":
		f.deletes++
		f.dnsr.RemoveTXT(name, text)
		json.NewEncoder(w).Encode(map[string]any{"status": "ok"})
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// TestDNS01TechnitiumAPI issues a wildcard and its apex through lego's
// technitium provider against a fake Technitium API on loopback, the CA
// validating the records it publishes; every record is removed after.
func TestDNS01TechnitiumAPI(t *testing.T) {
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
	ca := startCA(t)
	fake := &fakeTechnitium{dnsr: ca.DNS()}
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	env := newEnv(t, ca, `type = "dns-01"
provider = "technitium"
env = { TECHNITIUM_SERVER_BASE_URL = "`+api.URL+`", TECHNITIUM_API_TOKEN = "secret" }
resolvers = ["`+ca.DNSAddr()+`"]`,
		`name = "t"`+"\n"+`domains = ["t.example.test", "*.t.example.test"]`)
	_, log := env.mustRun(t, exitOK)
	if got := summaries(log); got["t"] != "renewed" {
		t.Fatalf("summaries = %v\n%s", got, log)
	}
	checkLineage(t, env, "t")
	fake.mu.Lock()
	adds, deletes := fake.adds, fake.deletes
	fake.mu.Unlock()
	if adds != 2 || deletes != 2 {
		t.Errorf("%d records added, %d deleted; want 2 and 2 (apex and wildcard share the record name)", adds, deletes)
	}
	if v := ca.DNS().TXT("_acme-challenge.t.example.test."); len(v) != 0 {
		t.Errorf("TXT record left behind: %v", v)
	}
}

// fakeOVH is the OVHcloud API's DNS zone records (access-token
// authentication), publishing through the CA's DNS responder.
type fakeOVH struct {
	zone string // "example.test"
	dnsr *testacme.DNSResponder

	mu      sync.Mutex
	next    int64
	records map[int64][2]string // id: name, value
}

func (f *fakeOVH) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/auth/time" {
		w.Write([]byte("1700000000"))
		return
	}
	if r.Header.Get("Authorization") != "Bearer secret" {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"class": "Client::Unauthorized", "message": "This credential is not valid"})
		return
	}
	base := "/domain/zone/" + f.zone
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == base+"/record":
		var rec struct {
			FieldType, SubDomain, Target string
		}
		if err := json.NewDecoder(r.Body).Decode(&rec); err != nil || rec.FieldType != "TXT" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"message": "bad record"})
			return
		}
		f.next++
		if f.records == nil {
			f.records = map[int64][2]string{}
		}
		name := rec.SubDomain + "." + f.zone + "."
		f.records[f.next] = [2]string{name, rec.Target}
		f.dnsr.AddTXT(name, rec.Target)
		json.NewEncoder(w).Encode(map[string]any{"id": f.next, "fieldType": "TXT", "subDomain": rec.SubDomain, "target": rec.Target, "zone": f.zone})
	case r.Method == http.MethodPost && r.URL.Path == base+"/refresh":
		w.Write([]byte("null"))
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, base+"/record/"):
		id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, base+"/record/"), 10, 64)
		rec, ok := f.records[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"message": "no such record"})
			return
		}
		delete(f.records, id)
		f.dnsr.RemoveTXT(rec[0], rec[1])
		w.Write([]byte("null"))
	default:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"message": "not found"})
	}
}

// TestDNS01OVHAPI issues through lego's ovh provider (access token) against
// a fake OVHcloud API on loopback, the CA validating the records; a
// refused token is a local error carrying OVH's message.
func TestDNS01OVHAPI(t *testing.T) {
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
	for _, v := range []string{"OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY", "OVH_CLIENT_ID", "OVH_CLIENT_SECRET"} {
		t.Setenv(v, "")
	}
	ca := startCA(t)
	startSOAServer(t, "example.test.")
	fake := &fakeOVH{zone: "example.test", dnsr: ca.DNS()}
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	env := newEnv(t, ca, `type = "dns-01"
provider = "ovh"
env = { OVH_ENDPOINT = "`+api.URL+`", OVH_ACCESS_TOKEN = "secret" }
resolvers = ["`+ca.DNSAddr()+`"]`,
		`name = "o"`+"\n"+`domains = ["o.example.test", "*.o.example.test"]`)
	_, log := env.mustRun(t, exitOK)
	if got := summaries(log); got["o"] != "renewed" {
		t.Fatalf("summaries = %v\n%s", got, log)
	}
	checkLineage(t, env, "o")
	fake.mu.Lock()
	left, added := len(fake.records), fake.next
	fake.mu.Unlock()
	if added != 2 || left != 0 {
		t.Errorf("%d records added, %d left; want 2 and 0", added, left)
	}
	if v := ca.DNS().TXT("_acme-challenge.o.example.test."); len(v) != 0 {
		t.Errorf("TXT record left behind: %v", v)
	}

	// A refused token, through the CLI: a local failure with OVH's message.
	env = newEnv(t, ca, `type = "dns-01"
provider = "ovh"
env = { OVH_ENDPOINT = "`+api.URL+`", OVH_ACCESS_TOKEN = "stale" }
resolvers = ["`+ca.DNSAddr()+`"]`, `name = "o2"`+"\n"+`domains = ["o2.example.test"]`)
	code, _, log := env.run(t, t.Context())
	if code == exitOK || !strings.Contains(log, "credentials refused") || !strings.Contains(log, "This credential is not valid") {
		t.Errorf("refused token: exit %d\n%s", code, log)
	}
}
