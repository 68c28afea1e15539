package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/renew"
)

// goodConfig uses every key.
const goodConfig = `# every key
server = "staging"
email = "admin@example.org"
agree_tos = true
root = "/var/lib/renewkit"
account_dir = "/var/lib/renewkit-accounts/le"
ca_file = "/etc/renewkit/ca.pem"
keep = 5
concurrency = 2

[eab]
key_id = "kid-1"
hmac_env = "TEST_EAB_HMAC"

[files]
group = "0"
key_mode = "0640"
cert_mode = "0644"
dir_mode = "0750"

[retry]
retries = 2
initial = "1s"
multiplier = 2.0
max = "1m"
jitter = 0.1

[defaults]
key_type = "ec384"
reuse_key = true
profile = "tlsserver"
policy = "30d"
hooks = [["systemctl", "reload", "nginx"]]
hook_timeout = "45s"

[defaults.challenge]
type = "http-01"
webroot = "/var/www/html"

[[certificate]]
name = "www"
domains = ["example.org", "www.example.org"]

[[certificate]]
domains = ["api.example.org"]
key_type = "rsa2048"
reuse_key = false
profile = ""
policy = "25%"
hooks = [
  ["/usr/local/bin/deploy", "--to", "api"],
  ["systemctl", "reload", "haproxy"],
]
hook_timeout = "1d"

[certificate.challenge]
type = "dns-01"
provider = "rfc2136"
env = { RFC2136_NAMESERVER = "127.0.0.1:53", RFC2136_ZONES = "example.org" }
resolvers = ["127.0.0.1:53"]
propagation_timeout = "2m"
propagation_delay = "5s"
skip_propagation_check = true

[[certificate]]
name = "wild"
domains = ["*.example.org", "example.org"]
hooks = []
challenge = { type = "dns-01", provider = "exec", env = { EXEC_PATH = "/usr/local/bin/dns" } }

[[certificate]]
name = "alpn"
domains = ["alpn.example.org"]
challenge = { type = "tls-alpn-01", listen = ":443" }

[[certificate]]
name = "listener"
domains = ["listener.example.org"]
[certificate.challenge]
type = "http-01"
listen = "127.0.0.1:80"
`

func TestParseConfigGood(t *testing.T) {
	cfg, err := parseConfig("config.toml", []byte(goodConfig), overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DirectoryURL != letsEncryptStaging || cfg.Email != "admin@example.org" || !cfg.AgreeTOS {
		t.Errorf("server/email/tos = %q %q %v", cfg.DirectoryURL, cfg.Email, cfg.AgreeTOS)
	}
	if cfg.Root != "/var/lib/renewkit" || cfg.AccountDir != "/var/lib/renewkit-accounts/le" || cfg.CAFile != "/etc/renewkit/ca.pem" {
		t.Errorf("paths = %q %q %q", cfg.Root, cfg.AccountDir, cfg.CAFile)
	}
	if want := (atomicfs.Modes{Key: 0o640, Cert: 0o644, Dir: 0o750, Group: "0"}); cfg.Keep != 5 || cfg.Concurrency != 2 || cfg.Modes != want {
		t.Errorf("keep %d concurrency %d modes %+v, want modes %+v", cfg.Keep, cfg.Concurrency, cfg.Modes, want)
	}
	if cfg.EAB == nil || cfg.EAB.KeyID != "kid-1" || cfg.EAB.HMACEnv != "TEST_EAB_HMAC" {
		t.Errorf("eab = %+v", cfg.EAB)
	}
	wantRetry := backoff.Policy{Retries: 2, Initial: time.Second, Multiplier: 2, Max: time.Minute, Jitter: 0.1}
	if cfg.Retry != wantRetry {
		t.Errorf("retry = %+v, want %+v", cfg.Retry, wantRetry)
	}
	names := []string{}
	for _, c := range cfg.Certificates {
		names = append(names, c.Name)
	}
	if want := []string{"www", "api.example.org", "wild", "alpn", "listener"}; !slices.Equal(names, want) {
		t.Fatalf("names = %v, want %v", names, want)
	}

	www := cfg.Certificates[0]
	if www.KeyType != renew.EC384 || !www.ReuseKey || www.Profile != "tlsserver" || www.Policy == nil {
		t.Errorf("www inherits: %+v", www.Certificate)
	}
	if got := www.Policy.String(); !strings.Contains(got, "30") {
		t.Errorf("www policy = %s", got)
	}
	if len(www.Hooks) != 1 || www.Hooks[0].Name() != "systemctl reload nginx" || !slices.Equal(www.Argvs[0], []string{"systemctl", "reload", "nginx"}) {
		t.Errorf("www hooks = %v", www.Argvs)
	}
	if www.Challenge.Type != challengeHTTP01 || www.Challenge.Webroot != "/var/www/html" {
		t.Errorf("www challenge = %+v", www.Challenge)
	}

	api := cfg.Certificates[1]
	if api.KeyType != renew.RSA2048 || api.ReuseKey || api.Profile != "" {
		t.Errorf("api overrides: %+v", api.Certificate)
	}
	if len(api.Hooks) != 2 {
		t.Errorf("api hooks = %v", api.Argvs)
	}
	if h, ok := api.Hooks[0].(*hooks.CommandHook); !ok || !slices.Equal(h.Argv(), []string{"/usr/local/bin/deploy", "--to", "api"}) {
		t.Errorf("api hook 0 = %#v", api.Hooks[0])
	}
	ch := api.Challenge
	if ch.Type != challengeDNS01 || ch.Provider != "rfc2136" || ch.Env["RFC2136_ZONES"] != "example.org" ||
		!slices.Equal(ch.Resolvers, []string{"127.0.0.1:53"}) || ch.PropagationTimeout != 2*time.Minute ||
		ch.PropagationDelay != 5*time.Second || !ch.SkipPropagationCheck {
		t.Errorf("api challenge = %+v", ch)
	}

	wild := cfg.Certificates[2]
	if len(wild.Hooks) != 0 {
		t.Errorf("hooks = [] must disable inherited hooks, got %v", wild.Argvs)
	}
	if wild.Challenge.Provider != "exec" || wild.Challenge.Env["EXEC_PATH"] != "/usr/local/bin/dns" {
		t.Errorf("wild challenge = %+v", wild.Challenge)
	}
	if c := cfg.Certificates[3].Challenge; c.Type != challengeTLSALPN01 || c.Listen != ":443" {
		t.Errorf("alpn challenge = %+v", c)
	}
	if c := cfg.Certificates[4].Challenge; c.Type != challengeHTTP01 || c.Listen != "127.0.0.1:80" {
		t.Errorf("listener challenge = %+v", c)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig("c.toml", []byte(`server = "https://ca.internal:8443/acme/directory"
[[certificate]]
domains = ["a.example"]
challenge = { type = "http-01", listen = ":80" }
`), overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Root != defaultRoot {
		t.Errorf("root = %q", cfg.Root)
	}
	if want := filepath.Join(defaultRoot, ".acme", "ca.internal_8443-"); !strings.HasPrefix(cfg.AccountDir, want) {
		t.Errorf("account dir = %q, want prefix %q", cfg.AccountDir, want)
	}
	c := cfg.Certificates[0]
	if c.Name != "a.example" || c.KeyType != renew.EC256 || c.Policy != nil || c.Hooks != nil || cfg.Retry != (backoff.Policy{}) {
		t.Errorf("defaults: %+v retry %+v", c, cfg.Retry)
	}
	// The shortcuts.
	cfg, err = parseConfig("c.toml", []byte(`server = "production"
[[certificate]]
domains = ["a.example"]
challenge = { type = "http-01", listen = ":80" }
`), overrides{})
	if err != nil || cfg.DirectoryURL != letsEncryptProduction {
		t.Errorf("production: %v %v", cfg, err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	const head = "server = \"staging\"\nroot = \"/srv/certs\"\n" // lines 1-2
	const ok = "\n[[certificate]]\nname = \"ok\"\ndomains = [\"ok.example\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n"
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{"syntax", head + "email = \n", []string{"c.toml:3:", "email"}},
		{"wrong type top", head + "keep = \"three\"\n" + ok, []string{"c.toml:3:", "keep", "wrong type", "a string, want an integer"}},
		{"wrong type bool", head + "agree_tos = \"yes\"\n" + ok, []string{"c.toml:3:", "agree_tos", "want a boolean"}},
		{"wrong type in certificate", head + ok + "\n[[certificate]]\nname = \"b\"\ndomains = \"b.example\"\n", []string{"c.toml:11:", "domains", "want an array"}},
		{"hook argv not strings", head + ok + "hooks = [[\"a\", 1]]\n", []string{"c.toml:8:", "hooks", "an integer, want a string"}},
		{"unknown top key", head + "emial = \"x@example.org\"\n" + ok, []string{"c.toml:3: unknown key emial", "did you mean email?"}},
		{"misspelled agree_tos", head + "agree_to = true\n" + ok, []string{"c.toml:3: unknown key agree_to (did you mean agree_tos?)"}},
		{"unknown key in second certificate", head + ok + "\n[[certificate]]\nname = \"b\"\ndomains = [\"b.example\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\nrenew_before = \"30d\"\n", []string{"c.toml:13: unknown key certificate.renew_before"}},
		{"unknown table", head + ok + "\n[certificat]\nname = \"x\"\n", []string{"c.toml:9: unknown key certificat"}},
		{"unknown key in inline table", head + "\n[[certificate]]\nname = \"ok\"\ndomains = [\"ok.example\"]\nchallenge = { type = \"http-01\", listen = \":80\", port = 80 }\n", []string{"c.toml:7: unknown key certificate.challenge.port"}},
		{"unknown key in defaults challenge", head + "[defaults.challenge]\ntype = \"http-01\"\nwebrot = \"/var/www\"\n" + ok, []string{"c.toml:5: unknown key defaults.challenge.webrot (did you mean webroot?)"}},
		{"duplicate names", head + ok + ok, []string{"c.toml:10:", "certificate name \"ok\" is already used by the certificate at line 4"}},
		{"duplicate names by first domain", head + ok + "\n[[certificate]]\ndomains = [\"ok\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n", []string{"c.toml:9:", "already used"}},
		{"missing domains", head + "\n[[certificate]]\nname = \"x\"\nchallenge = { type = \"http-01\", listen = \":80\" }\n", []string{"c.toml:4:", "certificate \"x\": domains is required"}},
		{"empty domains", head + "\n[[certificate]]\nname = \"x\"\ndomains = []\nchallenge = { type = \"http-01\", listen = \":80\" }\n", []string{"c.toml:6:", "domains is required"}},
		{"bad domain", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"ex ample.org\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n", []string{"c.toml:6:", "domain \"ex ample.org\"", "invalid character"}},
		{"duplicate domain", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"a.example\", \"A.example\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n", []string{"c.toml:6:", "listed twice"}},
		{"bad name", head + "\n[[certificate]]\nname = \"../etc\"\ndomains = [\"a.example\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n", []string{"c.toml:5:", "name must be"}},
		{"wildcard names the lineage", head + "\n[[certificate]]\ndomains = [\"*.a.example\"]\nchallenge = { type = \"dns-01\", provider = \"exec\" }\n", []string{"c.toml:5:", "set name"}},
		{"wildcard needs dns-01", head + "\n[[certificate]]\nname = \"w\"\ndomains = [\"*.a.example\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n", []string{"c.toml:6:", "wildcard names need the dns-01 challenge"}},
		{"bad key type", head + ok + "key_type = \"ed25519\"\n", []string{"c.toml:8:", "unknown key type \"ed25519\""}},
		{"key type not a string", head + ok + "key_type = 256\n", []string{"c.toml:8:", "want a key type string, not an integer"}},
		{"bad policy", head + "[defaults]\npolicy = \"30\"\n" + ok, []string{"c.toml:4:", "policy", "invalid renewal policy"}},
		{"bad duration", head + ok + "hook_timeout = \"soon\"\n", []string{"c.toml:8:", "invalid duration \"soon\""}},
		{"zero hook timeout", head + ok + "hook_timeout = \"0s\"\n", []string{"c.toml:8:", "hook_timeout must be positive"}},
		{"empty hook", head + ok + "hooks = [[\"systemctl\", \"reload\", \"nginx\"], []]\n", []string{"c.toml:8:", "hook 2 has an empty command"}},
		{"empty hook in defaults", head + "[defaults]\nhooks = [[\"\"]]\n" + ok, []string{"c.toml:4:", "hook 1 has an empty command"}},
		{"duplicate hook", head + ok + "hooks = [[\"a\"], [\"a\"]]\n", []string{"c.toml:8:", "both named \"a\""}},
		{"relative root", "server = \"staging\"\nroot = \"certs\"\n" + ok, []string{"c.toml:2:", "root \"certs\" must be an absolute path"}},
		{"relative ca file", head + "ca_file = \"ca.pem\"\n" + ok, []string{"c.toml:3:", "ca_file"}},
		{"missing server", "root = \"/srv\"\n" + ok, []string{"c.toml: server is required"}},
		{"bad server", head + "server = \"http://ca.example/dir\"\n", []string{"c.toml:3:", "Key 'server' has already been defined"}},
		{"bad server url", "server = \"http://ca.example/dir\"\nroot = \"/srv\"\n" + ok, []string{"c.toml:1:", "neither \"staging\""}},
		{"bad email", head + "email = \"mailto:a@example.org\"\n" + ok, []string{"c.toml:3:", "plain address"}},
		{"negative keep", head + "keep = -1\n" + ok, []string{"c.toml:3:", "keep must be at least 1"}},
		{"no certificates", head, []string{"no [[certificate]] configured"}},
		{"no challenge", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"x.example\"]\n", []string{"c.toml:4:", "no challenge"}},
		{"unknown challenge type", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"x.example\"]\nchallenge = { type = \"http-02\" }\n", []string{"c.toml:7:", "unknown type \"http-02\""}},
		{"http-01 without way", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"x.example\"]\n[certificate.challenge]\ntype = \"http-01\"\n", []string{"c.toml:7:", "http-01 needs webroot"}},
		{"http-01 both", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"x.example\"]\n[certificate.challenge]\ntype = \"http-01\"\nlisten = \":80\"\nwebroot = \"/var/www\"\n", []string{"c.toml:7:", "not both"}},
		{"relative webroot", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"x.example\"]\n[certificate.challenge]\ntype = \"http-01\"\nwebroot = \"www\"\n", []string{"c.toml:9:", "webroot \"www\" must be an absolute path"}},
		{"bad listen", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"x.example\"]\n[certificate.challenge]\ntype = \"tls-alpn-01\"\nlisten = \"443\"\n", []string{"c.toml:9:", "listen \"443\" must be host:port"}},
		{"provider on http-01", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"x.example\"]\n[certificate.challenge]\ntype = \"http-01\"\nlisten = \":80\"\nprovider = \"exec\"\n", []string{"c.toml:10:", "provider applies to dns-01 only"}},
		{"unknown provider", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"x.example\"]\n[certificate.challenge]\ntype = \"dns-01\"\nprovider = \"nosuchdns\"\n", []string{"c.toml:9:", "unknown DNS provider \"nosuchdns\"", "rfc2136"}},
		{"dns-01 without provider", head + "\n[[certificate]]\nname = \"x\"\ndomains = [\"x.example\"]\n[certificate.challenge]\ntype = \"dns-01\"\n", []string{"c.toml:7:", "dns-01 needs provider"}},
		{"eab without hmac", head + "[eab]\nkey_id = \"k\"\n" + ok, []string{"c.toml:3:", "exactly one of hmac"}},
		{"eab two hmacs", head + "[eab]\nkey_id = \"k\"\nhmac = \"x\"\nhmac_env = \"Y\"\n" + ok, []string{"c.toml:3:", "exactly one of hmac"}},
		{"eab without key id", head + "[eab]\nhmac = \"x\"\n" + ok, []string{"c.toml:3:", "key_id is required"}},
		{"bad key mode", head + "[files]\nkey_mode = \"0644\"\n" + ok, []string{"c.toml:4:", "key_mode 0644 grants more"}},
		{"zero dir mode", head + "[files]\ndir_mode = \"0000\"\n" + ok, []string{"c.toml:4:", "dir_mode 0000", "grants nothing"}},
		{"mode not a string", head + "[files]\ncert_mode = 0o644\n" + ok, []string{"c.toml:4:", "want an octal mode string"}},
		{"bad mode", head + "[files]\ndir_mode = \"rwx\"\n" + ok, []string{"c.toml:4:", "invalid file mode"}},
		{"unknown group", head + "[files]\ngroup = \"no-such-group-renewkit\"\n" + ok, []string{"c.toml:4:", "group"}},
		{"defaults with name", head + "[defaults]\nname = \"x\"\n" + ok, []string{"c.toml:4:", "defaults: name cannot have a default"}},
		{"bad jitter", head + "[retry]\njitter = 2.0\n" + ok, []string{"c.toml:4:", "jitter"}},
		{"several problems", head + "keep = -1\n\n[[certificate]]\nname = \"x\"\n", []string{"c.toml:3:", "c.toml:5:", "domains is required", "no challenge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("c.toml", []byte(tt.in), overrides{})
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

// TestParseErrorDoesNotEchoBareValues: an unquoted secret (hmac = abc…)
// was quoted back in the parse error, to stderr and (SIGHUP) the log.
func TestParseErrorDoesNotEchoBareValues(t *testing.T) {
	in := "server = \"staging\"\n[eab]\nkey_id = \"k\"\nhmac = abcdefSECRETsecret9xyz\n"
	_, err := parseConfig("c.toml", []byte(in), overrides{})
	if err == nil {
		t.Fatal("no error for an unquoted value")
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("the error echoes the value: %v", err)
	}
	for _, w := range []string{"c.toml:4:", "eab.hmac", "needs quotes"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := loadConfig(path, overrides{})
	if err == nil || !strings.Contains(err.Error(), path+": cannot read configuration: no such file or directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestOverrides(t *testing.T) {
	const in = `server = "staging"
email = "file@example.org"
root = "/srv/file"
keep = 4
[[certificate]]
name = "a"
domains = ["a.example"]
challenge = { type = "http-01", listen = ":80" }
`
	s := func(v string) *string { return &v }
	n := func(v int) *int { return &v }
	yes := true
	cfg, err := parseConfig("c.toml", []byte(in), overrides{
		Server: s("production"), Email: s("flag@example.org"), AgreeTOS: &yes, Root: s("rel/root"),
		CAFile: s("/etc/ca.pem"), AccountDir: s("/srv/acct"), Keep: n(7), Concurrency: n(3),
	})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if cfg.DirectoryURL != letsEncryptProduction || cfg.Email != "flag@example.org" || !cfg.AgreeTOS ||
		cfg.Root != filepath.Join(wd, "rel/root") || cfg.CAFile != "/etc/ca.pem" || cfg.AccountDir != "/srv/acct" ||
		cfg.Keep != 7 || cfg.Concurrency != 3 {
		t.Errorf("overridden config = %+v", cfg)
	}
	// A bad value from a flag is reported against the flag.
	_, err = parseConfig("c.toml", []byte(in), overrides{Server: s("ftp://x"), Keep: n(-2)})
	if err == nil || !strings.Contains(err.Error(), "flag -server: server:") || !strings.Contains(err.Error(), "flag -keep:") {
		t.Errorf("err = %v", err)
	}
	// The account directory follows -root unless set.
	cfg, err = parseConfig("c.toml", []byte(in), overrides{Root: s("/srv/flag")})
	if err != nil || !strings.HasPrefix(cfg.AccountDir, "/srv/flag/.acme/") {
		t.Errorf("account dir %q, %v", cfg.AccountDir, err)
	}
}

func TestIndexKeys(t *testing.T) {
	const doc = `a = 1 # comment
"quoted.key" = 'x'
multi = """
not = a key
[not.a.table]
"""
arr = [
  ["x", "]"],
  { k = 1 },
]
[t]
b.c = 2
[[arr2]]
x = 1
[[arr2]]
x = { y = 2,
  z = 3 }
[arr2.sub]
w = 4
`
	idx := indexKeys(doc)
	for ipath, want := range map[string]int{
		"a": 1, "quoted.key": 2, "multi": 3, "arr": 7, "t": 11, "t.b.c": 12,
		"arr2[0]": 13, "arr2[0].x": 14, "arr2[1]": 15, "arr2[1].x": 16, "arr2[1].x.z": 17,
		"arr2[1].sub": 18, "arr2[1].sub.w": 19, "arr2[1].nope": 15, "not": 0,
	} {
		if got := idx.line(ipath); got != want {
			t.Errorf("line(%q) = %d, want %d", ipath, got, want)
		}
	}
	if got := idx.undecodedLines([][]string{{"arr2", "x"}, {"arr2", "x"}, {"arr2", "x", "y"}}); !slices.Equal(got, []int{14, 16, 16}) {
		t.Errorf("undecodedLines = %v", got)
	}
}

// FuzzLoadConfig checks that no input makes the parser panic or hang, and
// that every error names the file.
func FuzzLoadConfig(f *testing.F) {
	f.Add(goodConfig)
	f.Add("server = \"staging\"\n[[certificate]]\ndomains = [\"a.example\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n")
	f.Add("[[certificate]]\nname = \"a\"\n[[certificate]]\nname = \"a\"\n")
	f.Add("a = \"\"\"\n[x]\n\"\"\"\nb = [[1], {c = 2}]\n[[d.e]]\n[d.e.f]\n")
	f.Add("server = 1\nroot = [\"x\"]\nkeep = \"x\"\n")
	f.Add("[defaults]\nhooks = [[]]\npolicy = \"1/3\"\nhook_timeout = \"1d\"\n")
	f.Add("x = '''\n'''''\ny = \"\\\"\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		cfg, err := parseConfig("f.toml", []byte(in), overrides{})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.toml") {
				t.Fatalf("error does not name the file: %q", err)
			}
			return
		}
		if len(cfg.Certificates) == 0 || cfg.DirectoryURL == "" || !filepath.IsAbs(cfg.Root) {
			t.Fatalf("accepted an incomplete configuration: %+v", cfg)
		}
		for _, c := range cfg.Certificates {
			if renew.ValidateName(c.Name) != nil || len(c.Domains) == 0 || c.Challenge.Type == "" {
				t.Fatalf("accepted a bad certificate: %+v", c)
			}
		}
		indexKeys(in) // terminates on anything
	})
}

func TestParseConfigManyProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString("server = \"staging\"\n")
	for i := range 30 {
		fmt.Fprintf(&b, "[[certificate]]\nname = \"c%d\"\nbogus = 1\n", i)
	}
	_, err := parseConfig("c.toml", []byte(b.String()), overrides{})
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxReported+1 || lines[0] != "c.toml:4: unknown key certificate.bogus" ||
		lines[maxReported-1] != "c.toml:61: unknown key certificate.bogus" || lines[maxReported] != "… and 10 more problems" {
		t.Errorf("error:\n%s", err)
	}
}

func TestSuggestKey(t *testing.T) {
	tests := []struct {
		path []string
		want string
	}{
		{[]string{"agree_to"}, "agree_tos"},
		{[]string{"emial"}, "email"},
		{[]string{"certificat"}, "certificate"},
		{[]string{"certificate", "domain"}, "domains"},
		{[]string{"certificate", "challenge", "webrot"}, "webroot"},
		{[]string{"defaults", "challenge", "propagation_timout"}, "propagation_timeout"},
		{[]string{"fleet", "endpoint"}, "endpoints"},
		{[]string{"colour"}, ""},
		{[]string{"certificate", "renew_before"}, ""},
		{[]string{"certificate", "challenge", "env", "X"}, ""},
		{[]string{"nosuch", "key"}, ""},
	}
	for _, tt := range tests {
		if got := suggestKey(tt.path); got != tt.want {
			t.Errorf("suggestKey(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
