package testacme

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"
)

// forgotten is the set of accounts a simulated CA reset dropped (see
// [Server.ForgetAccount]).
type forgotten struct {
	mu   sync.Mutex
	ids  map[string]bool   // account IDs answered accountDoesNotExist
	keys map[string]string // refused key thumbprints → account ID
}

// ForgetAccount makes the server behave as if a reset had dropped the
// account at accountURL, as a CA whose database was reset does: every
// request signed with that account's URL is answered 400
// accountDoesNotExist, and a lookup of its key (onlyReturnExisting) finds
// nothing. The key can register a new account, with a new URL; unless
// refuseKey is set, in which case a registration with that key is answered
// 400 badPublicKey, as a CA that blocked the key would.
func (s *Server) ForgetAccount(accountURL string, refuseKey bool) error {
	path, err := urlPath(accountURL)
	if err != nil {
		return fmt.Errorf("testacme: forget account: %w", err)
	}
	id, ok := strings.CutPrefix(path, "/my-account/")
	if !ok || id == "" {
		return fmt.Errorf("testacme: forget account: %q is not an account URL", accountURL)
	}
	acct := s.store.GetAccountByID(id)
	if acct == nil {
		return fmt.Errorf("testacme: forget account: no account %q", accountURL)
	}
	thumb, err := thumbprint(acct.Key)
	if err != nil {
		return fmt.Errorf("testacme: forget account %s: %w", accountURL, err)
	}
	// Move the account to a key nobody holds, so that the real key is
	// unknown to Pebble: a lookup finds nothing and a registration creates
	// a new account.
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("testacme: forget account: %w", err)
	}
	if err := s.store.ChangeAccountKey(acct, &jose.JSONWebKey{Key: &k.PublicKey}); err != nil {
		return fmt.Errorf("testacme: forget account %s: %w", accountURL, err)
	}
	f := &s.forgotten
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids == nil {
		f.ids, f.keys = make(map[string]bool), make(map[string]string)
	}
	f.ids[id] = true
	if refuseKey {
		f.keys[thumb] = id
	}
	return nil
}

func thumbprint(k *jose.JSONWebKey) (string, error) {
	t, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}

// forgottenAnswer answers a request that concerns a forgotten account and
// reports whether it did.
func (s *Server) forgottenAnswer(w http.ResponseWriter, r *http.Request, ep Endpoint) bool {
	f := &s.forgotten
	f.mu.Lock()
	active := len(f.ids) > 0
	f.mu.Unlock()
	if !active || r.Method != http.MethodPost {
		return false
	}
	kid, jwk := jwsKeys(r)
	f.mu.Lock()
	var problem, detail string
	if kid != "" {
		if path, err := urlPath(kid); err == nil {
			if id, ok := strings.CutPrefix(path, "/my-account/"); ok && f.ids[id] {
				problem, detail = "accountDoesNotExist", "testacme: account "+kid+" was forgotten"
			}
		}
	} else if jwk != nil && ep == EndpointNewAccount {
		if t, err := thumbprint(jwk); err == nil && f.keys[t] != "" {
			problem, detail = "badPublicKey", "testacme: the key of a forgotten account is refused"
		}
	}
	f.mu.Unlock()
	if problem == "" {
		return false
	}
	s.applyFault(w, r, Fault{Kind: FaultProblem, Problem: problem, Status: http.StatusBadRequest, Detail: detail})
	return true
}

// jwsKeys returns the "kid" or the "jwk" of the protected header of the
// flattened JWS in r's body, leaving the body in place.
func jwsKeys(r *http.Request) (kid string, jwk *jose.JSONWebKey) {
	if r.Body == nil {
		return "", nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return "", nil
	}
	var jws struct {
		Protected string `json:"protected"`
	}
	if json.Unmarshal(body, &jws) != nil {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(jws.Protected)
	if err != nil {
		return "", nil
	}
	var h struct {
		KID string           `json:"kid"`
		JWK *jose.JSONWebKey `json:"jwk"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return "", nil
	}
	return h.KID, h.JWK
}
