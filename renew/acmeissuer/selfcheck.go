package acmeissuer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/renewkit/renewkit/renew"
)

// selfCheckTimeout bounds one name's fetch in [HTTP01.SelfCheck].
const selfCheckTimeout = 15 * time.Second

// SelfCheck checks, as the CA will, that the web server serves h.Webroot
// for each of names: it writes a random probe file under
// Webroot/.well-known/acme-challenge/ (through the same safe path as the
// tokens: os.Root, O_NOFOLLOW, no symbolic link another user owns),
// fetches http://NAME/.well-known/acme-challenge/PROBE on port 80 for each
// name (no proxy, redirects followed as the CA does), compares the body
// and removes the probe. Wildcard names are skipped (they take DNS-01).
//
// The result maps every checked name to nil (the probe came back) or a
// *[renew.LocalError] naming the webroot and the URL and saying what came
// back (an HTTP status, another body, a connection error) and the fix. A
// probe that cannot be written is returned under every name. It returns
// nil when h has no Webroot. It leaves nothing behind but on a crash
// between the write and the removal, a probe file in the challenge
// directory (harmless; a name no token has).
func (h *HTTP01) SelfCheck(ctx context.Context, names []string) map[string]error {
	if h == nil || h.Webroot == "" {
		return nil
	}
	var check []string
	for _, n := range names {
		if !strings.HasPrefix(n, "*.") {
			check = append(check, n)
		}
	}
	if len(check) == 0 {
		return nil
	}
	res := make(map[string]error, len(check))
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	token := "renewkit-selfcheck-" + base64.RawURLEncoding.EncodeToString(b[:12])
	body := base64.RawURLEncoding.EncodeToString(b[12:])
	wp := &webrootProvider{dir: h.Webroot}
	if err := webrootExists(h.Webroot); err != nil {
		for _, n := range check {
			res[n] = err
		}
		return res
	}
	if err := wp.Present(ctx, "", token, body); err != nil {
		for _, n := range check {
			res[n] = err
		}
		return res
	}
	defer func() { _ = wp.CleanUp(context.WithoutCancel(ctx), "", token, "") }()
	dial := h.dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	for _, n := range check {
		res[n] = h.fetchProbe(ctx, client, n, token, body)
	}
	return res
}

// fetchProbe fetches the probe token for name and compares its body.
func (h *HTTP01) fetchProbe(ctx context.Context, client *http.Client, name, token, want string) error {
	u := "http://" + name + "/" + challengeDir + "/" + token
	what := fmt.Sprintf("webroot %s self-check of %s", h.Webroot, u)
	fix := fmt.Sprintf("serve %s at / on port 80 for %s (nginx: root %s; or location /.well-known/acme-challenge/ { root %s; }), and make %s resolve to that server",
		h.Webroot, name, h.Webroot, h.Webroot, name)
	ctx, cancel := context.WithTimeout(ctx, selfCheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return &renew.LocalError{What: what, Err: err, Fix: "check the certificate's name"}
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap() // the *url.Error repeats the URL
		}
		return &renew.LocalError{What: what, Err: fmt.Errorf("connection: %w", err), Fix: fix}
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return &renew.LocalError{What: what, Err: fmt.Errorf("reading the answer: %w", err), Fix: fix}
	}
	if resp.StatusCode != http.StatusOK {
		return &renew.LocalError{What: what, Err: fmt.Errorf("HTTP status %s (the probe was written to %s)", resp.Status, filepath.Join(h.Webroot, challengeDir, token)), Fix: fix}
	}
	if !bytes.Equal(bytes.TrimSpace(got), []byte(want)) {
		return &renew.LocalError{What: what, Err: fmt.Errorf("HTTP 200 with another body than the probe written to %s (%d bytes)", filepath.Join(h.Webroot, challengeDir, token), len(got)), Fix: fix}
	}
	return nil
}
