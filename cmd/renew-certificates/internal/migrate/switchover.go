package migrate

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Where the switch-over checks look by default.
var (
	defaultSystemdDirs = []string{"/etc/systemd/system/timers.target.wants", "/etc/systemd/system/multi-user.target.wants"}
	defaultCronFiles   = []string{"/etc/crontab", "/etc/cron.d/*", "/etc/cron.daily/*", "/etc/cron.weekly/*", "/var/spool/cron/crontabs/*", "/var/spool/cron/*"}
	defaultServerDirs  = []string{"/etc/nginx", "/etc/apache2", "/etc/httpd", "/etc/haproxy", "/etc/lighttpd", "/etc/caddy", "/etc/postfix", "/etc/dovecot"}
)

// switchOver prints what the user must do so that the two tools do not
// both renew, and so that servers read renewkit's files: the tool's timers
// and cron entries found, and the server configuration lines naming the
// tool's files.
func switchOver(p *printer, o Options, st *State, ls []*Lineage) {
	p.f("\nSwitching over:\n")
	found := false
	for _, d := range orDefault(o.systemdDirs, defaultSystemdDirs) {
		for _, unit := range []string{st.Tool + ".timer", st.Tool + ".service"} {
			if _, err := os.Stat(filepath.Join(d, unit)); err == nil {
				p.f("  - %s is enabled (%s): stop it with `systemctl disable --now %s`\n", unit, d, unit)
				found = true
			}
		}
	}
	for _, pat := range orDefault(o.cronFiles, defaultCronFiles) {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			for _, hit := range grep(f, func(line string) bool {
				t := strings.TrimSpace(line)
				return !strings.HasPrefix(t, "#") && containsWord(t, st.Tool)
			}) {
				p.f("  - %s runs %s: comment the line out (or remove the file)\n", hit, st.Tool)
				found = true
			}
		}
	}
	if !found {
		p.f("  - no %s timer or cron entry found; stop whatever runs `%s renew` on this machine\n", st.Tool, st.Tool)
	}
	p.f("  - run renew-certificates from its timer instead (examples/systemd in the renewkit repository)\n")
	for _, l := range ls {
		dir := filepath.Join(o.Root, l.Name)
		p.f("  - %s: point servers at %s/fullchain.pem and %s/privkey.pem (or cert.pem, chain.pem, combined.pem) and reload them\n", l.Name, dir, dir)
		old := []string{filepath.Join(st.From, "live", l.Name) + string(filepath.Separator)}
		if st.Tool == "lego" {
			old = []string{filepath.Join(st.From, "certificates", l.Name) + "."}
		}
		for _, d := range orDefault(o.serverDirs, defaultServerDirs) {
			filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() || !e.Type().IsRegular() {
					return nil
				}
				for _, hit := range grep(path, func(line string) bool { return strings.Contains(line, old[0]) }) {
					p.f("      %s names %s's files\n", hit, st.Tool)
				}
				return nil
			})
		}
	}
}

// grep returns "path:N" for each line of path (up to 1 MiB read) that
// match accepts.
func grep(path string, match func(string) bool) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > maxFile || bytes.IndexByte(b, 0) >= 0 {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		if match(sc.Text()) {
			out = append(out, fmt.Sprintf("%s:%d", path, n))
		}
	}
	return out
}

// containsWord reports whether s contains w not as part of a longer word
// (so that "certbot" matches "/usr/bin/certbot -q renew" but not
// "certbot-dns").
func containsWord(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(w)
		before := j == 0 || !isWordByte(s[j-1])
		after := end == len(s) || !isWordByte(s[end]) && s[end] != '-'
		if before && after {
			return true
		}
		i = end
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func orDefault(v, d []string) []string {
	if v == nil {
		return d
	}
	return v
}
