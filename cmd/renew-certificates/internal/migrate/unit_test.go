package migrate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestHookArgv(t *testing.T) {
	tests := []struct {
		line  string
		argv  []string
		shell bool
	}{
		{"systemctl reload nginx", []string{"systemctl", "reload", "nginx"}, false},
		{"  /usr/local/bin/deploy   --quiet ", []string{"/usr/local/bin/deploy", "--quiet"}, false},
		{"systemctl reload nginx && echo done", []string{"/bin/sh", "-c", "systemctl reload nginx && echo done"}, true},
		{"cp $RENEWED_LINEAGE/fullchain.pem /srv", []string{"/bin/sh", "-c", "cp $RENEWED_LINEAGE/fullchain.pem /srv"}, true},
		{`touch "/tmp/a b"`, []string{"/bin/sh", "-c", `touch "/tmp/a b"`}, true},
	}
	for _, tt := range tests {
		argv, sh := hookArgv(tt.line)
		if !slices.Equal(argv, tt.argv) || sh != tt.shell {
			t.Errorf("hookArgv(%q) = %q, %v; want %q, %v", tt.line, argv, sh, tt.argv, tt.shell)
		}
	}
}

func TestCertbotPolicy(t *testing.T) {
	for in, want := range map[string]string{"30 days": "30d", "1 day": "1d", "2 weeks": "14d", "3 weeks": "21d"} {
		if got, err := certbotPolicy(in); err != nil || got != want {
			t.Errorf("certbotPolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "30", "thirty days", "-1 days", "1 month"} {
		if got, err := certbotPolicy(in); err == nil {
			t.Errorf("certbotPolicy(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseRenewalConf(t *testing.T) {
	conf := `# renew_before_expiry = 30 days
renew_before_expiry = 2 weeks
version = 2.1.0
cert = /etc/letsencrypt/live/x/cert.pem

# Options used in the renewal process
[renewalparams]
account = abc
authenticator = webroot
webroot_path = /var/www/x,
renew_hook = "systemctl reload nginx"
[[webroot_map]]
x.example = /var/www/x
www.x.example = /var/www/x
`
	top, params, webroots := parseRenewalConf([]byte(conf))
	if top["renew_before_expiry"] != "2 weeks" || top["cert"] != "/etc/letsencrypt/live/x/cert.pem" {
		t.Errorf("top = %v", top)
	}
	if params["account"] != "abc" || params["authenticator"] != "webroot" || params["renew_hook"] != "systemctl reload nginx" {
		t.Errorf("params = %v", params)
	}
	if !slices.Equal(webroots, []string{"/var/www/x", "/var/www/x"}) {
		t.Errorf("webroots = %v", webroots)
	}
}

// The switch-over advice finds an enabled timer, a cron entry and a web
// server configuration naming the tool's files; a commented cron line and
// another tool's plugin name do not count.
func TestSwitchOver(t *testing.T) {
	d := t.TempDir()
	wants := filepath.Join(d, "timers.target.wants")
	cron := filepath.Join(d, "cron.d")
	nginx := filepath.Join(d, "nginx")
	for _, dir := range []string{wants, cron, nginx} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(wants, "certbot.timer"), "")
	write(filepath.Join(cron, "certbot"), "# 0 */12 * * * root certbot -q renew\n0 */12 * * * root test -x /usr/bin/certbot && certbot -q renew\n")
	write(filepath.Join(cron, "other"), "0 1 * * * root /usr/bin/certbot-dns-helper\n")
	write(filepath.Join(nginx, "site.conf"), "server {\n  ssl_certificate /etc/letsencrypt/live/web/fullchain.pem;\n  ssl_certificate_key /etc/letsencrypt/live/web/privkey.pem;\n}\n")
	o := Options{Root: "/var/lib/renewkit", systemdDirs: []string{wants}, cronFiles: []string{filepath.Join(cron, "*")}, serverDirs: []string{nginx}}
	st := &State{Tool: "certbot", From: "/etc/letsencrypt"}
	var b strings.Builder
	p := &printer{w: &b}
	switchOver(p, o, st, []*Lineage{{Name: "web"}})
	out := b.String()
	for _, want := range []string{
		"certbot.timer is enabled", "systemctl disable --now certbot.timer",
		filepath.Join(cron, "certbot") + ":2 runs certbot",
		filepath.Join(nginx, "site.conf") + ":2 names", filepath.Join(nginx, "site.conf") + ":3 names",
		"/var/lib/renewkit/web/fullchain.pem",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("advice lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{":1 runs certbot", filepath.Join(cron, "other")} {
		if strings.Contains(out, bad) {
			t.Errorf("advice has %q:\n%s", bad, out)
		}
	}
}

// The renewal conf parser takes whatever certbot's directory holds without
// panicking, and a key it reports is one the input has.
func FuzzParseRenewalConf(f *testing.F) {
	f.Add([]byte("version = 2.1.0\n[renewalparams]\naccount = abc\nauthenticator = webroot\n[[webroot_map]]\na.example = /var/www\n"))
	f.Add([]byte("[renewalparams\n= x\n[[\n]]\nk = 'v\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, params, _ := parseRenewalConf(data)
		for k := range top {
			if !strings.Contains(string(data), k) {
				t.Fatalf("key %q not in the input", k)
			}
		}
		for k := range params {
			if !strings.Contains(string(data), k) {
				t.Fatalf("key %q not in the input", k)
			}
		}
	})
}
