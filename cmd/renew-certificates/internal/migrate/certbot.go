package migrate

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/renewkit/renewkit/renew"
)

// DefaultCertbotDir is certbot's configuration directory unless
// --config-dir says otherwise.
const DefaultCertbotDir = "/etc/letsencrypt"

// letsEncrypt is certbot's and lego's default server.
const letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// readCertbot reads certbot's configuration directory dir: every
// renewal/NAME.conf with its live/NAME/ files, the executable files of
// renewal-hooks/deploy/, and the accounts the lineages name
// (accounts/SERVER/ID/private_key.json and regr.json).
func readCertbot(r reader) (*State, error) {
	st := &State{Tool: "certbot", From: r.root, Accounts: map[string]*Account{}}
	confs, err := filepath.Glob(filepath.Join(r.root, "renewal", "*.conf"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(r.root, "renewal")); err != nil {
		return nil, fmt.Errorf("%s is not certbot's configuration directory (no renewal/): %w", r.root, err)
	}
	deploy, deployNote := certbotDeployHooks(r)
	for _, conf := range confs {
		l := readCertbotLineage(r, conf)
		if l.Err == nil {
			l.Hooks = append(slices.Clone(deploy), l.Hooks...)
			if deployNote != "" {
				l.Notes = append(l.Notes, deployNote)
			}
			if l.Account != "" {
				if _, ok := st.Accounts[l.Account]; !ok {
					st.Accounts[l.Account] = readCertbotAccount(r, l.Server, l.Account)
				}
				if a := st.Accounts[l.Account]; a.Err != nil {
					l.Err = fmt.Errorf("account %s: %w", l.Account, a.Err)
				}
			}
		}
		st.Lineages = append(st.Lineages, l)
	}
	slices.SortFunc(st.Lineages, func(a, b *Lineage) int { return strings.Compare(a.Name, b.Name) })
	return st, nil
}

// certbotDeployHooks returns the executable files of renewal-hooks/deploy/,
// which certbot runs after every renewal of every lineage, sorted as
// certbot runs them, and a note for the plan.
func certbotDeployHooks(r reader) ([][]string, string) {
	dir := filepath.Join(r.root, "renewal-hooks", "deploy")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, ""
	}
	var out [][]string
	var skipped []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		if err := r.check(p, false); err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		out = append(out, []string{p})
	}
	var note string
	if len(out) > 0 {
		note = fmt.Sprintf("the deploy hooks of %s run for it too (keep them there, or copy them elsewhere and edit the configuration, before removing certbot)", dir)
	}
	if len(skipped) > 0 {
		note = strings.TrimSpace(note + "; not used: " + strings.Join(skipped, "; "))
	}
	return out, note
}

// readCertbotLineage reads one renewal/NAME.conf and the files it names.
// Errors end up in the Lineage's Err.
func readCertbotLineage(r reader, conf string) *Lineage {
	name := strings.TrimSuffix(filepath.Base(conf), ".conf")
	l := &Lineage{Name: name, Source: conf, Server: letsEncrypt}
	data, err := r.read(conf)
	if err != nil {
		l.Err = err
		return l
	}
	top, params, webroots := parseRenewalConf(data)
	if err := renew.ValidateName(name); err != nil {
		l.Err = fmt.Errorf("the name %q is not a renewkit lineage name: %w", name, err)
		return l
	}
	if s := params["server"]; s != "" {
		l.Server = s
	}
	l.Account = params["account"]
	if l.Account == "" {
		l.Err = fmt.Errorf("%s names no account", conf)
		return l
	}
	// The current files: what live/NAME/ points at; the paths the conf
	// names only when live/NAME/ lacks them (a directory copied or moved
	// keeps the old absolute paths in its confs).
	files := map[string]*[]byte{"cert": &l.Files.Cert, "chain": &l.Files.Chain, "privkey": &l.Files.Key}
	for _, k := range []string{"cert", "chain", "privkey"} {
		p := filepath.Join(r.root, "live", name, k+".pem")
		if _, err := os.Lstat(p); err != nil && top[k] != "" {
			p = top[k]
		}
		b, err := r.read(p)
		if err != nil {
			l.Err = err
			return l
		}
		*files[k] = b
	}
	if err := l.certInfo(); err != nil {
		l.Err = fmt.Errorf("live/%s: %w", name, err)
		return l
	}
	// How renewals validate.
	switch auth := params["authenticator"]; {
	case params["installer"] != "" && params["installer"] != "None":
		l.Err = fmt.Errorf("certbot's %s installer edits the web server's configuration, which renewkit never does: get the certificate once with `certbot certonly --webroot` (or write [certificate.challenge] by hand) and import again", params["installer"])
		return l
	case auth == "webroot":
		roots := map[string]bool{}
		for _, w := range webroots {
			roots[w] = true
		}
		if len(roots) == 0 {
			if w := strings.TrimSuffix(strings.TrimSpace(params["webroot_path"]), ","); w != "" && !strings.Contains(w, ",") {
				roots[w] = true
			}
		}
		if len(roots) != 1 {
			l.Err = fmt.Errorf("the webroot differs between its names (%d document roots); renewkit has one webroot per certificate: split the certificate or write [certificate.challenge] by hand", len(roots))
			return l
		}
		for w := range roots {
			l.Challenge = Challenge{Type: "http-01", Webroot: w}
		}
	case auth == "standalone":
		port := params["http01_port"]
		if port == "" {
			port = "80"
		}
		if _, err := strconv.Atoi(port); err != nil {
			l.Err = fmt.Errorf("http01_port %q is not a port", port)
			return l
		}
		l.Challenge = Challenge{Type: "http-01", Listen: params["http01_address"] + ":" + port}
		if params["pre_hook"] != "" || params["post_hook"] != "" {
			l.Notes = append(l.Notes, "its pre_hook/post_hook (stopping the web server for the standalone listener) do not carry over: renewkit has no pre/post hooks; serve /.well-known/acme-challenge/ by a webroot instead, or free the port")
		}
	case strings.HasPrefix(auth, "dns-"):
		l.Err = fmt.Errorf("certbot's %s plugin: its credentials file is not mapped; write [certificate.challenge] with type = \"dns-01\" and the provider (renew-certificates -help-config) by hand", auth)
		return l
	default:
		l.Err = fmt.Errorf("certbot's %q authenticator has no renewkit equivalent here", auth)
		return l
	}
	if h := cmp.Or(params["renew_hook"], params["deploy_hook"]); h != "" {
		argv, sh := hookArgv(h)
		l.Hooks = append(l.Hooks, argv)
		if sh {
			l.Notes = append(l.Notes, "its deploy hook uses the shell, so it runs as /bin/sh -c (renewkit runs hooks without a shell otherwise)")
		}
	}
	if params["pre_hook"] != "" || params["post_hook"] != "" {
		if params["authenticator"] != "standalone" {
			l.Notes = append(l.Notes, "its pre_hook/post_hook do not carry over (renewkit has no pre/post hooks)")
		}
	}
	l.ReuseKey = strings.EqualFold(params["reuse_key"], "true")
	if pc := params["preferred_chain"]; pc != "" {
		l.Notes = append(l.Notes, fmt.Sprintf("preferred_chain %q does not carry over: renewkit installs the CA's default chain", pc))
	}
	if rbe := top["renew_before_expiry"]; rbe != "" {
		p, err := certbotPolicy(rbe)
		if err != nil {
			l.Notes = append(l.Notes, fmt.Sprintf("renew_before_expiry %q: %v; the default policy (1/3 of the lifetime left) applies", rbe, err))
		} else {
			l.Policy = p
		}
	}
	return l
}

// certbotPolicy maps renew_before_expiry ("30 days", "2 weeks") to a
// policy ("30d").
func certbotPolicy(s string) (string, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return "", errors.New("not \"N days\" or \"N weeks\"")
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return "", errors.New("not a positive number")
	}
	switch strings.TrimSuffix(f[1], "s") {
	case "day":
		return fmt.Sprintf("%dd", n), nil
	case "week":
		return fmt.Sprintf("%dd", 7*n), nil
	}
	return "", errors.New("only days and weeks are mapped")
}

// parseRenewalConf parses certbot's renewal configuration (ConfigObj):
// the top-level keys, [renewalparams], and its [[webroot_map]] values.
func parseRenewalConf(data []byte) (top, params map[string]string, webroots []string) {
	top, params = map[string]string{}, map[string]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[] ")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), unquote(strings.TrimSpace(v))
		switch section {
		case "":
			top[k] = v
		case "renewalparams":
			params[k] = v
		case "webroot_map":
			webroots = append(webroots, v)
		}
	}
	return top, params, webroots
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// readCertbotAccount reads accounts/HOST/PATH/ID/ of server: its key
// (private_key.json, a JWK) and URL (regr.json's "uri").
func readCertbotAccount(r reader, server, id string) *Account {
	a := &Account{ID: id, Server: server}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		a.Err = fmt.Errorf("server %q is not a URL", server)
		return a
	}
	if id != filepath.Base(id) || id == "." || id == ".." {
		a.Err = fmt.Errorf("account ID %q is not a directory name", id)
		return a
	}
	dir := filepath.Join(r.root, "accounts", u.Host, filepath.FromSlash(strings.TrimPrefix(u.Path, "/")), id)
	a.Source = dir
	if _, err := os.Stat(dir); err != nil {
		a.Err = fmt.Errorf("missing: %w", err)
		return a
	}
	if a.Key, a.Err = r.read(filepath.Join(dir, "private_key.json")); a.Err != nil {
		return a
	}
	regr, err := r.read(filepath.Join(dir, "regr.json"))
	if err != nil {
		a.Err = err
		return a
	}
	var reg struct {
		URI  string `json:"uri"`
		Body struct {
			Contact []string `json:"contact"`
		} `json:"body"`
	}
	if err := json.Unmarshal(regr, &reg); err != nil || reg.URI == "" {
		a.Err = fmt.Errorf("%s: no account URL (%v)", filepath.Join(dir, "regr.json"), err)
		return a
	}
	a.URL = reg.URI
	for _, c := range reg.Body.Contact {
		if e, ok := strings.CutPrefix(c, "mailto:"); ok {
			a.Email = e
			break
		}
	}
	return a
}
