package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/fleet"
)

// fleetOK is a valid certificate for the [fleet] tests (after the section).
const fleetOK = "\n[[certificate]]\nname = \"ok\"\ndomains = [\"ok.example\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n"

func TestParseFleetConfig(t *testing.T) {
	in := `server = "staging"
[fleet]
endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
ca_file = "/etc/renewkit/etcd-ca.pem"
cert_file = "/etc/renewkit/etcd-node.pem"
key_file = "/etc/renewkit/etcd-node-key.pem"
prefix = "/sites/www/"
seal_key_file = "/etc/renewkit/seal.key"
old_seal_key_files = ["/etc/renewkit/seal-2025.key"]
node = "web-1"
lock_ttl = "20s"
request_timeout = "3s"
` + fleetOK
	cfg, err := parseConfig("c.toml", []byte(in), overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := fleet.Config{
		Endpoints: []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"},
		CAFile:    "/etc/renewkit/etcd-ca.pem", CertFile: "/etc/renewkit/etcd-node.pem", KeyFile: "/etc/renewkit/etcd-node-key.pem",
		Prefix: "/sites/www/", SealKeyFile: "/etc/renewkit/seal.key", OldSealKeyFiles: []string{"/etc/renewkit/seal-2025.key"},
		Node: "web-1", LockTTL: 20 * time.Second, RequestTimeout: 3 * time.Second, DialTimeout: 3 * time.Second,
	}
	got := cfg.Fleet
	if got == nil {
		t.Fatal("no fleet configuration")
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("fleet = %+v, want %+v", *got, want)
	}

	// Only the two required keys: the fleet package's defaults apply.
	cfg, err = parseConfig("c.toml", []byte("server = \"staging\"\n[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nseal_key_file = \"/k\"\n"+fleetOK), overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg.Fleet; f == nil || f.Prefix != "" || f.Node != "" || f.LockTTL != 0 || f.RequestTimeout != 0 {
		t.Errorf("fleet defaults = %+v", f)
	}

	// No section: single-node mode.
	cfg, err = parseConfig("c.toml", []byte("server = \"staging\"\n"+fleetOK), overrides{})
	if err != nil || cfg.Fleet != nil {
		t.Errorf("without [fleet]: %+v, %v", cfg.Fleet, err)
	}
}

// Every [fleet] key's mistakes are refused with the file, the line of the
// key and the key's name.
func TestParseFleetConfigErrors(t *testing.T) {
	const head = "server = \"staging\"\n[fleet]\n" // lines 1-2
	const ep = "endpoints = [\"https://127.0.0.1:2379\"]\n"
	const seal = "seal_key_file = \"/etc/renewkit/seal.key\"\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"no endpoints", head + seal, []string{"c.toml:2:", "fleet: endpoints is required"}},
		{"empty endpoints", head + seal + "endpoints = []\n", []string{"c.toml:4:", "endpoints is required"}},
		{"endpoint without scheme", head + seal + "endpoints = [\"10.0.0.1:2379\"]\n", []string{"c.toml:4:", "endpoint \"10.0.0.1:2379\"", "http(s)://HOST:PORT"}},
		{"endpoint without port", head + seal + "endpoints = [\"https://etcd.example\"]\n", []string{"c.toml:4:", "http(s)://HOST:PORT"}},
		{"endpoint with path", head + seal + "endpoints = [\"https://etcd.example:2379/v3\"]\n", []string{"c.toml:4:", "http(s)://HOST:PORT"}},
		{"endpoint twice", head + seal + "endpoints = [\"https://a:2379\", \"https://a:2379\"]\n", []string{"c.toml:4:", "listed twice"}},
		{"endpoints not a list", head + seal + "endpoints = \"https://a:2379\"\n", []string{"c.toml:4:", "endpoints", "want an array"}},
		{"http with TLS files", head + seal + "endpoints = [\"http://a:2379\"]\nca_file = \"/ca.pem\"\n", []string{"c.toml:4:", "is http:// although ca_file"}},
		{"relative ca_file", head + seal + ep + "ca_file = \"ca.pem\"\n", []string{"c.toml:5:", "fleet: ca_file \"ca.pem\" must be an absolute path"}},
		{"relative cert_file", head + seal + ep + "cert_file = \"c.pem\"\nkey_file = \"/k.pem\"\n", []string{"c.toml:5:", "cert_file \"c.pem\" must be an absolute path"}},
		{"relative key_file", head + seal + ep + "cert_file = \"/c.pem\"\nkey_file = \"k.pem\"\n", []string{"c.toml:6:", "key_file \"k.pem\" must be an absolute path"}},
		{"cert without key", head + seal + ep + "cert_file = \"/c.pem\"\n", []string{"c.toml:2:", "set both cert_file and key_file"}},
		{"no seal key", head + ep, []string{"c.toml:2:", "seal_key_file is required", "openssl rand -hex 32"}},
		{"relative seal key", head + ep + "seal_key_file = \"seal.key\"\n", []string{"c.toml:4:", "seal_key_file \"seal.key\" must be an absolute path"}},
		{"relative old seal key", head + ep + seal + "old_seal_key_files = [\"old.key\"]\n", []string{"c.toml:5:", "old_seal_key_files: \"old.key\" must be an absolute path"}},
		{"old seal key is the seal key", head + ep + seal + "old_seal_key_files = [\"/etc/renewkit/seal.key\"]\n", []string{"c.toml:5:", "lists seal_key_file"}},
		{"relative prefix", head + ep + seal + "prefix = \"renewkit/\"\n", []string{"c.toml:5:", "prefix \"renewkit/\" must start with \"/\""}},
		{"prefix with space", head + ep + seal + "prefix = \"/a b/\"\n", []string{"c.toml:5:", "prefix"}},
		{"node with space", head + ep + seal + "node = \"web 1\"\n", []string{"c.toml:5:", "node \"web 1\" must be"}},
		{"lock_ttl fraction", head + ep + seal + "lock_ttl = \"1500ms\"\n", []string{"c.toml:5:", "lock_ttl 1.5s must be whole seconds"}},
		{"lock_ttl zero", head + ep + seal + "lock_ttl = \"0s\"\n", []string{"c.toml:5:", "lock_ttl"}},
		{"lock_ttl not a duration", head + ep + seal + "lock_ttl = 30\n", []string{"c.toml:5:", "want a duration string"}},
		{"request_timeout zero", head + ep + seal + "request_timeout = \"0s\"\n", []string{"c.toml:5:", "request_timeout must be positive"}},
		{"request_timeout bad", head + ep + seal + "request_timeout = \"soon\"\n", []string{"c.toml:5:", "invalid duration \"soon\""}},
		{"unknown key", head + ep + seal + "endpoint = \"https://a:2379\"\n", []string{"c.toml:5: unknown key fleet.endpoint"}},
		{"unknown key dial_timeout", head + ep + seal + "dial_timeout = \"1s\"\n", []string{"c.toml:5: unknown key fleet.dial_timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("c.toml", []byte(tt.in+fleetOK), overrides{})
			if err == nil {
				t.Fatalf("no error for\n%s", tt.in)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
