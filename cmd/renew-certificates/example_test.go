package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A configuration with mistakes: every problem is reported with the file
// and line, and nothing runs (exit code 2).
func Example_loadConfig() {
	dir, err := os.MkdirTemp("", "renew-certificates-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.toml")
	os.WriteFile(path, []byte(`server = "staging"
root = "/var/lib/renewkit"

[defaults.challenge]
type = "http-01"
webroot = "/var/www/html"

[[certificate]]
name = "www"
domains = ["example.org", "www.example.org"]
key_type = "rsa2048"
hooks = [["systemctl", "reload", "nginx"], []]

[[certificate]]
name = "www"
domains = ["*.example.org"]
`), 0o644)

	_, err = loadConfig(path, overrides{})
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Println(strings.TrimPrefix(line, dir+string(filepath.Separator)))
	}
	// Output:
	// config.toml:12: certificate "www": hook 2 has an empty command (want e.g. ["systemctl", "reload", "nginx"])
	// config.toml:16: certificate "www": wildcard names need the dns-01 challenge, not http-01
}
