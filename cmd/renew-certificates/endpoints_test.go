package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/expiry"
)

const serveHead = "server = \"staging\"\nroot = \"/srv/certs\"\n\n[[certificate]]\nname = \"ok\"\ndomains = [\"ok.example\"]\nchallenge = { type = \"http-01\", listen = \":80\" }\n" // lines 1-7

func TestServeConfig(t *testing.T) {
	cfg, err := parseConfig("c.toml", []byte(serveHead), overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := serveConfig{Listen: defaultListen, Grace: defaultGrace, ReadyLevel: expiry.LevelWarning}
	if cfg.Serve != want {
		t.Errorf("defaults: %+v, want %+v", cfg.Serve, want)
	}
	cfg, err = parseConfig("c.toml", []byte(serveHead+"\n[serve]\nlisten = \":9750\"\ngrace = \"25s\"\nready_level = \"Urgent\"\n"), overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want = serveConfig{Listen: ":9750", Grace: 25 * time.Second, ReadyLevel: expiry.LevelUrgent}
	if cfg.Serve != want {
		t.Errorf("set: %+v, want %+v", cfg.Serve, want)
	}
	if g := cfg.Serve.hookGrace(); g != 20*time.Second {
		t.Errorf("hook grace %v, want 20s", g)
	}
	listen := "[::1]:0"
	cfg, err = parseConfig("c.toml", []byte(serveHead+"\n[serve]\nlisten = \":9750\"\n"), overrides{Listen: &listen})
	if err != nil || cfg.Serve.Listen != listen {
		t.Errorf("-listen over serve.listen: %+v, %v", cfg.Serve, err)
	}
}

func TestServeConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ov   overrides
		want string
	}{
		{"listen without port", "[serve]\nlisten = \"127.0.0.1\"\n", overrides{}, "c.toml:10: serve: listen \"127.0.0.1\": want host:port"},
		{"listen bad port", "[serve]\nlisten = \":http\"\n", overrides{}, "c.toml:10: serve: listen \":http\": port \"http\" is not a number"},
		{"grace too short", "[serve]\ngrace = \"1s\"\n", overrides{}, "c.toml:10: serve: grace 1s must be between 2s and 10m0s"},
		{"grace not a duration", "[serve]\ngrace = 15\n", overrides{}, "c.toml:10:"},
		{"bad ready level", "[serve]\nready_level = \"ok\"\n", overrides{}, "c.toml:10: serve: ready_level: \"ok\" is not one of"},
		{"unknown key", "[serve]\naddr = \":9750\"\n", overrides{}, "c.toml:10: unknown key serve.addr"},
		{"bad -listen", "", overrides{Listen: new("9750")}, "flag -listen: serve: listen \"9750\": want host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("c.toml", []byte(serveHead+"\n"+tt.in), tt.ov)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestServeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-serve", "-metrics-file", "x.prom"},
		{"-listen", ":9750"},
		{"-serve", "-status"},
		{"-serve", "-dry-run"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	opts, err := parseFlags([]string{"-serve", "-listen", ":0", "-force", "all"})
	if err != nil || !opts.serve || opts.overrides.Listen == nil || *opts.overrides.Listen != ":0" {
		t.Errorf("-serve -listen :0: %+v, %v", opts, err)
	}
}

func TestServeStartErrors(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.toml")
	conf := strings.Replace(serveHead, "/srv/certs", filepath.Join(dir, "root"), 1)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	code, _, stderr := runCLI(t, t.Context(), "-serve", "-config", cfgPath, "-listen", busy.Addr().String())
	if code != exitFailed || !strings.Contains(stderr, "serve.listen "+busy.Addr().String()) || !strings.Contains(stderr, "fix: free the address") {
		t.Errorf("busy address: exit %d, stderr:\n%s", code, stderr)
	}
	if err := os.WriteFile(cfgPath, []byte(conf+"\n[serve]\ngrace = \"1h\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, t.Context(), "-serve", "-config", cfgPath)
	if code != exitUsage || !strings.Contains(stderr, cfgPath+":10: serve: grace 1h0m0s must be between") {
		t.Errorf("bad grace: exit %d, stderr:\n%s", code, stderr)
	}
}
