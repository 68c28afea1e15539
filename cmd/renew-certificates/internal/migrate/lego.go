package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/renewkit/renewkit/renew"
)

// legoServers maps lego's account directory names of Let's Encrypt to
// their directory URLs: lego keeps only the host.
var legoServers = map[string]string{
	"acme-v02.api.letsencrypt.org":         letsEncrypt,
	"acme-staging-v02.api.letsencrypt.org": "https://acme-staging-v02.api.letsencrypt.org/directory",
}

// readLego reads lego's directory (--path, ".lego" by default):
// certificates/NAME.crt, .key and .issuer.crt, and the account of server
// (accounts/HOST_PORT/EMAIL/account.json and keys/EMAIL.key). server may be
// empty when lego's accounts are for Let's Encrypt only; email picks one
// of several accounts for the server.
func readLego(r reader, server, email string) (*State, error) {
	st := &State{Tool: "lego", From: r.root, Accounts: map[string]*Account{}}
	acct, err := readLegoAccount(r, server, email)
	if err != nil {
		return nil, err
	}
	st.Accounts[acct.ID] = acct
	crts, err := filepath.Glob(filepath.Join(r.root, "certificates", "*.crt"))
	if err != nil {
		return nil, err
	}
	for _, crt := range crts {
		if strings.HasSuffix(crt, ".issuer.crt") {
			continue
		}
		base := strings.TrimSuffix(crt, ".crt")
		l := &Lineage{Name: filepath.Base(base), Source: crt, Server: acct.Server, Account: acct.ID,
			Challenge: Challenge{Type: "http-01", Listen: ":80"}}
		l.Notes = append(l.Notes, "lego does not record how it validated: the configuration says HTTP-01 on :80 (lego's --http); change [certificate.challenge] if you used --http.webroot, --tls or --dns, and add lego's --run-hook/--renew-hook as hooks")
		st.Lineages = append(st.Lineages, l)
		if err := renew.ValidateName(l.Name); err != nil {
			l.Err = fmt.Errorf("the name %q is not a renewkit lineage name: %w", l.Name, err)
			continue
		}
		if acct.Err != nil {
			l.Err = fmt.Errorf("account %s: %w", acct.ID, acct.Err)
			continue
		}
		if l.Files.Cert, l.Err = r.read(crt); l.Err != nil {
			continue
		}
		if l.Files.Key, l.Err = r.read(base + ".key"); l.Err != nil {
			continue
		}
		// lego bundles the issuer into .crt unless --no-bundle.
		if bytes.Count(l.Files.Cert, []byte("-----BEGIN CERTIFICATE-----")) < 2 {
			if l.Files.Chain, l.Err = r.read(base + ".issuer.crt"); l.Err != nil {
				continue
			}
		}
		if err := l.certInfo(); err != nil {
			l.Err = fmt.Errorf("%s: %w", crt, err)
		}
		l.Policy = "30d" // lego renew's --days default
	}
	slices.SortFunc(st.Lineages, func(a, b *Lineage) int { return strings.Compare(a.Name, b.Name) })
	return st, nil
}

// readLegoAccount finds the one account of server (or of the only
// server) in accounts/, narrowed to email when given.
func readLegoAccount(r reader, server, email string) (*Account, error) {
	root := filepath.Join(r.root, "accounts")
	var host string
	if server != "" {
		u, err := url.Parse(server)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("-server %q is not a URL", server)
		}
		host = strings.ReplaceAll(u.Host, ":", "_")
	} else {
		ents, err := os.ReadDir(root)
		if err != nil {
			return nil, fmt.Errorf("%s is not lego's directory (no accounts/): %w", r.root, err)
		}
		var hosts []string
		for _, e := range ents {
			if e.IsDir() {
				hosts = append(hosts, e.Name())
			}
		}
		if len(hosts) != 1 {
			return nil, fmt.Errorf("%s has accounts for %d servers (%s): name the one to import with -server URL", root, len(hosts), strings.Join(hosts, ", "))
		}
		host = hosts[0]
		if server = legoServers[host]; server == "" {
			return nil, fmt.Errorf("lego keeps only the host of the server (%s), not its directory URL: give it with -server https://%s/PATH", host, strings.ReplaceAll(host, "_", ":"))
		}
	}
	dir := filepath.Join(root, host)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("no lego account for %s: %w", server, err)
	}
	var emails []string
	for _, e := range ents {
		if e.IsDir() && (email == "" || e.Name() == email) {
			emails = append(emails, e.Name())
		}
	}
	if len(emails) != 1 {
		return nil, fmt.Errorf("%s has %d accounts matching (%s): name the one to import with -email", dir, len(emails), strings.Join(emails, ", "))
	}
	a := &Account{ID: emails[0], Email: emails[0], Server: server, Source: filepath.Join(dir, emails[0])}
	data, err := r.read(filepath.Join(a.Source, "account.json"))
	if err != nil {
		a.Err = err
		return a, nil
	}
	var rec struct {
		Registration struct {
			URI string `json:"uri"`
		} `json:"registration"`
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Registration.URI == "" {
		a.Err = fmt.Errorf("%s: no account URL (%v)", filepath.Join(a.Source, "account.json"), err)
		return a, nil
	}
	a.URL = rec.Registration.URI
	a.Key, a.Err = r.read(filepath.Join(a.Source, "keys", a.ID+".key"))
	return a, nil
}
