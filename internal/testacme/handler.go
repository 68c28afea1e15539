package testacme

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/letsencrypt/pebble/v2/acme"
	"github.com/letsencrypt/pebble/v2/core"
)

// holdLimit caps how long the middleware holds a response while waiting for
// Pebble's asynchronous work (validation, finalization). It is longer than
// Pebble's 15 s validation timeout, so a hold ends because the work ended.
const holdLimit = 20 * time.Second

// serveHTTP is the middleware in front of Pebble's ACME handler: it applies
// injected faults, records orders for Stats, holds challenge and finalize
// responses until Pebble's store shows the asynchronous work done, and keeps
// apart the requests that would deadlock or race inside Pebble (see the
// package documentation: "Speed" and "Concurrency bugs in Pebble").
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.reqs.enter() {
		http.Error(w, "testacme: server closed", http.StatusServiceUnavailable)
		return
	}
	defer s.reqs.leave()
	arrived := time.Now()
	ep, id := classify(r.URL.Path)
	s.acct.touch(s.acct.orderOf(ep, id), arrived)

	if f, ok := s.faults.pick(ep); ok {
		s.log.Info("fault injected", "fault", f.label(), "method", r.Method, "path", r.URL.Path)
		if f.Kind == FaultPendingError {
			if s.pendingError(w, r, f, ep, id) {
				return
			}
		} else if s.applyFault(w, r, f) {
			return
		}
	}
	if s.forgottenAnswer(w, r, ep) {
		return
	}
	switch ep {
	case EndpointNewOrder:
		s.newOrder(w, r, arrived)
	case EndpointChallenge:
		s.challenge(w, r, id)
	case EndpointFinalize:
		s.finalize(w, r, id)
	case EndpointOrder, EndpointOrders:
		s.authzMu.RLock()
		s.handler.ServeHTTP(w, r)
		if ep == EndpointOrder {
			s.noteIssued(id)
		}
		s.authzMu.RUnlock()
	case EndpointAuthz:
		s.authzMu.Lock()
		defer s.authzMu.Unlock()
		s.handler.ServeHTTP(w, r)
	case EndpointRenewalInfo:
		s.ariMu.RLock()
		defer s.ariMu.RUnlock()
		s.handler.ServeHTTP(w, r)
	default:
		s.handler.ServeHTTP(w, r)
	}
}

// applyFault answers r as f says and reports whether it did (false: pass the
// request on to Pebble, after a FaultDelay).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch f.Kind {
	case FaultHTML:
		if n := f.retryAfterSeconds(); n > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(n))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(f.status())
		page := fmt.Sprintf("<html><head><title>%d %s</title></head><body><h1>%[1]d %[2]s</h1><p>testacme injected fault</p>",
			f.status(), http.StatusText(f.status()))
		const end = "</body></html>\n"
		n, _ := io.WriteString(w, page)
		s.faults.addBody(n)
		if pad := f.BodySize - int64(len(page)+len(end)); pad > 0 {
			s.writeFiller(w, r, pad, 'x')
		}
		n, _ = io.WriteString(w, end)
		s.faults.addBody(n)
		return true
	case FaultBody:
		w.Header().Set("Content-Type", "application/json")
		if f.BodySize >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(f.BodySize, 10))
		}
		w.WriteHeader(f.status())
		s.writeFiller(w, r, f.BodySize, ' ')
		return true
	case FaultReset:
		s.reset(w)
		return true
	case FaultDelay:
		readBody(r)                  // so that a client giving up ends r's context
		var expired <-chan time.Time // nil: no limit (Release only)
		if f.Delay > 0 || f.Release == nil {
			t := time.NewTimer(f.Delay)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-expired:
			return false
		case <-f.Release:
			return false
		case <-r.Context().Done(): // client gave up: nothing left to answer
		case <-s.closing:
		}
		return true
	case FaultStall:
		readBody(r) // so that a client giving up ends r's context
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return true
	default: // FaultProblem
		if r.Method == http.MethodPost {
			if n := s.freshNonce(r); n != "" {
				w.Header().Set("Replay-Nonce", n)
			}
		}
		if n := f.retryAfterSeconds(); n > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(n))
		}
		detail := f.Detail
		if detail == "" {
			detail = "testacme injected fault " + f.label()
		}
		body, _ := json.Marshal(struct {
			Type   string `json:"type"`
			Detail string `json:"detail"`
			Status int    `json:"status"`
		}{f.problemType(), detail, f.status()})
		w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
		w.WriteHeader(f.status())
		_, _ = w.Write(body)
		return true
	}
}

// pendingError applies a FaultPendingError (see there) and reports whether
// it answered r.
func (s *Server) pendingError(w http.ResponseWriter, r *http.Request, f Fault, ep Endpoint, id string) bool {
	detail := f.Detail
	if detail == "" {
		detail = "testacme injected fault " + f.label()
	}
	prob := &acme.ProblemDetails{Type: f.problemType(), Detail: detail, HTTPStatus: http.StatusBadRequest}
	switch ep {
	case EndpointChallenge:
		if len(jwsPayload(r)) == 0 {
			return false // a poll
		}
		ch := s.store.GetChallengeByID(id)
		if ch == nil {
			return false
		}
		ch.RLock()
		c := ch.Challenge
		ch.RUnlock()
		c.Status, c.Error = acme.StatusPending, prob
		body, err := json.Marshal(c)
		if err != nil {
			return false
		}
		if n := s.freshNonce(r); n != "" {
			w.Header().Set("Replay-Nonce", n)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
		return true
	case EndpointAuthz:
		rec := newRecorder()
		s.authzMu.Lock()
		s.handler.ServeHTTP(rec, r)
		s.authzMu.Unlock()
		var az acme.Authorization
		if rec.code == http.StatusOK && json.Unmarshal(rec.buf.Bytes(), &az) == nil {
			az.Status = acme.StatusPending
			for i := range az.Challenges {
				az.Challenges[i].Status, az.Challenges[i].Error = acme.StatusPending, prob
			}
			if body, err := json.Marshal(az); err == nil {
				rec.buf.Reset()
				rec.buf.Write(body)
				rec.h.Del("Content-Length")
			}
		}
		rec.replay(w)
		return true
	}
	return false
}

// writeFiller writes n bytes of b to w (n negative: until the client gives
// up or the server closes), counting them in the fault statistics.
func (s *Server) writeFiller(w http.ResponseWriter, r *http.Request, n int64, b byte) {
	chunk := bytes.Repeat([]byte{b}, 32<<10)
	for n != 0 {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		default:
		}
		c := chunk
		if n > 0 && n < int64(len(c)) {
			c = c[:n]
		}
		k, err := w.Write(c)
		s.faults.addBody(k)
		if err != nil {
			return
		}
		if n > 0 {
			n -= int64(k)
		}
	}
}

// reset closes the client's connection with a TCP RST before any response.
func (s *Server) reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http closes the connection, without a response
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn() // skip close_notify: the peer must see a reset, not a clean close
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // close sends RST
	}
	_ = raw.Close()
}

// freshNonce asks Pebble for a nonce, for injected problem responses (a real
// server includes one in every response to a POST).
func (s *Server) freshNonce(r *http.Request) string {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodHead, "/nonce-plz", nil)
	if err != nil {
		return ""
	}
	req.Host = r.Host
	req.Header.Set("User-Agent", "testacme")
	rec := newRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec.h.Get("Replay-Nonce")
}

// newOrder passes a newOrder request to Pebble and records the order it
// creates as created at arrived.
func (s *Server) newOrder(w http.ResponseWriter, r *http.Request, arrived time.Time) {
	payload := jwsPayload(r)
	var req struct {
		Replaces string `json:"replaces"`
	}
	_ = json.Unmarshal(payload, &req) // a malformed body is Pebble's to reject
	if req.Replaces != "" {
		// Pebble reads the predecessor's "replaced" flag without a lock, and
		// its finalize goroutine writes it: wait for every finalization in
		// progress (they hold replMu shared until their write is observed,
		// see finalize) and exclude new ones while Pebble reads.
		s.replMu.Lock()
		defer s.replMu.Unlock()
	}
	rec := newRecorder()
	s.authzMu.RLock()
	s.handler.ServeHTTP(rec, r)
	var id string
	if rec.code == http.StatusCreated {
		if loc, err := urlPath(rec.h.Get("Location")); err == nil {
			id, _ = strings.CutPrefix(loc, "/my-order/")
		}
		s.recordOrder(id, arrived)
	}
	s.authzMu.RUnlock()
	rec.replay(w)
}

// recordOrder records a new order for Stats. Callers hold authzMu shared
// (it calls GetOrderByID).
func (s *Server) recordOrder(id string, arrived time.Time) {
	o := s.store.GetOrderByID(id)
	if o == nil {
		return
	}
	o.RLock()
	names := make([]string, 0, len(o.Identifiers))
	for _, ident := range o.Identifiers {
		names = append(names, ident.Value)
	}
	authzs := o.AuthorizationObjects
	replaces := o.Replaces != ""
	o.RUnlock()
	var azIDs, chIDs []string
	for _, az := range authzs {
		az.RLock()
		azIDs = append(azIDs, az.ID)
		for _, ch := range az.Challenges {
			chIDs = append(chIDs, ch.ID) // immutable after creation
		}
		az.RUnlock()
	}
	s.acct.addOrder(id, names, replaces, azIDs, chIDs, arrived)
}

// challenge passes a challenge request to Pebble. When it starts a
// validation (a POST with a payload, not a POST-as-GET poll), the response
// is held until Pebble's store shows the challenge valid or invalid: the
// client's first authorization poll then sees the result instead of
// sleeping its default 5 s (Pebble sends no Retry-After).
func (s *Server) challenge(w http.ResponseWriter, r *http.Request, chalID string) {
	if len(jwsPayload(r)) == 0 {
		s.handler.ServeHTTP(w, r)
		return
	}
	// A failed validation of a replacing order makes the VA reset the
	// predecessor's "replaced" flag (as Pebble v2.10.3 is written it looks the
	// predecessor up by the wrong key and writes nothing, but a fixed Pebble
	// would race like finalize does): hold replMu shared until it is done.
	s.replMu.RLock()
	defer s.replMu.RUnlock()
	rec := newRecorder()
	s.handler.ServeHTTP(rec, r)
	if rec.code == http.StatusOK {
		s.settleChallenge(chalID)
	}
	rec.replay(w)
}

func (s *Server) settleChallenge(chalID string) {
	ch := s.store.GetChallengeByID(chalID)
	if ch == nil {
		return
	}
	var status string
	done := s.waitUntil(func() bool {
		ch.RLock()
		status = ch.Status
		ch.RUnlock()
		return status != acme.StatusPending && status != acme.StatusProcessing
	})
	if !done {
		s.log.Warn("challenge still not validated; releasing its response", "challenge", chalID, "after", holdLimit)
		return
	}
	if status != acme.StatusInvalid {
		return
	}
	// The VA marks the order failed (and, for a replacing order, tries to
	// release its predecessor) after the challenge: wait for that too, under
	// the order's lock, so the client's next request sees it.
	ch.RLock()
	authz := ch.Authz
	ch.RUnlock()
	if authz == nil {
		return
	}
	authz.RLock()
	o := authz.Order
	authz.RUnlock()
	if o == nil {
		return
	}
	s.waitUntil(func() bool {
		o.RLock()
		defer o.RUnlock()
		return o.Error != nil
	})
}

// finalize passes a finalize request to Pebble and, when Pebble accepted it
// (status processing), holds the response until the asynchronous issuance
// has finished: the order is valid (or failed) and, for an ARI replacement,
// the predecessor is marked replaced. Then the client's first order poll
// sees the certificate, and no later newOrder can read the predecessor's
// flag while Pebble writes it (see newOrder).
func (s *Server) finalize(w http.ResponseWriter, r *http.Request, orderID string) {
	s.replMu.RLock()
	defer s.replMu.RUnlock()
	rec := newRecorder()
	s.authzMu.RLock()
	s.handler.ServeHTTP(rec, r)
	o := s.store.GetOrderByID(orderID)
	s.authzMu.RUnlock()
	if rec.code == http.StatusOK && o != nil {
		s.settleFinalize(orderID, o)
	}
	rec.replay(w)
}

func (s *Server) settleFinalize(orderID string, o *core.Order) {
	done := s.waitUntil(func() bool {
		st, err := o.GetStatus()
		return err != nil || st != acme.StatusProcessing
	})
	if !done {
		s.log.Warn("order still processing; releasing its finalize response", "order", orderID, "after", holdLimit)
		return
	}
	o.RLock()
	cert, replaces := o.CertificateObject, o.Replaces
	o.RUnlock()
	if cert == nil {
		return
	}
	s.acct.issued(orderID, cert.ID)
	if replaces == "" {
		return
	}
	serial, err := certIDSerialHex(replaces)
	if err != nil {
		return
	}
	// Pebble's goroutine indexes the new order by serial, then marks the
	// predecessor replaced under the predecessor's lock. Observing the flag
	// under that lock orders the write before this handler's replMu release.
	prev, err := s.store.GetOrderByIssuedSerial(serial)
	if err != nil {
		return
	}
	if !s.waitUntil(func() bool {
		prev.RLock()
		defer prev.RUnlock()
		return prev.IsReplaced
	}) {
		s.log.Warn("predecessor not marked replaced", "order", orderID, "replaces", replaces)
	}
}

// noteIssued counts an issuance seen on an order poll that the finalize hold
// missed (it gave up, or the server was closing). Callers hold authzMu
// shared (it calls GetOrderByID).
func (s *Server) noteIssued(orderID string) {
	if orderID == "" || s.acct.isIssued(orderID) {
		return
	}
	o := s.store.GetOrderByID(orderID)
	if o == nil {
		return
	}
	o.RLock()
	cert := o.CertificateObject
	o.RUnlock()
	if cert != nil {
		s.acct.issued(orderID, cert.ID)
	}
}

// waitUntil polls cond (which must read Pebble's state under its locks)
// with a short backoff until it holds, holdLimit passes or the server
// closes. Pebble has no notification to wait on instead.
func (s *Server) waitUntil(cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.Now().Add(holdLimit)
	d := 50 * time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return false
		case <-t.C:
		}
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		d = min(2*d, 2*time.Millisecond)
		t.Reset(d)
	}
}

// certIDSerialHex returns the serial, in Pebble's hex form, of an ARI
// CertID ("base64url(AKI).base64url(serial)").
func certIDSerialHex(certID string) (string, error) {
	_, b64, ok := strings.Cut(certID, ".")
	if !ok {
		return "", fmt.Errorf("malformed CertID %q", certID)
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("malformed CertID %q: %w", certID, err)
	}
	return hex.EncodeToString(new(big.Int).SetBytes(raw).Bytes()), nil
}

// readBody reads r's body into memory (at most 1 MiB) and leaves a copy in
// its place. net/http notices a client closing its connection, and ends r's
// context, only once the request's body has been read to its end: a handler
// holding a POST whose body is unread kept running after its client gave up,
// until the server closed (a stalled request of one test outlived it into
// the next).
func readBody(r *http.Request) []byte {
	if r.Body == nil {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body
}

// jwsPayload returns the decoded payload of the flattened JWS in r's body
// (nil for a POST-as-GET or anything unparsable) and leaves the body in
// place for Pebble.
func jwsPayload(r *http.Request) []byte {
	body := readBody(r)
	if body == nil {
		return nil
	}
	var jws struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(body, &jws) != nil {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		return nil
	}
	return payload
}

func urlPath(raw string) (string, error) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return "", fmt.Errorf("not an absolute URL: %q", raw)
	}
	rest := raw[i+3:]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		return rest[j:], nil
	}
	return "/", nil
}

// recorder buffers a response so that it can be held, then replayed.
type recorder struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func newRecorder() *recorder { return &recorder{h: make(http.Header)} }

func (r *recorder) Header() http.Header { return r.h }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.buf.Write(p)
}

func (r *recorder) replay(w http.ResponseWriter) {
	for k, v := range r.h {
		w.Header()[k] = v
	}
	if r.code == 0 {
		r.code = http.StatusOK
	}
	w.WriteHeader(r.code)
	_, _ = w.Write(r.buf.Bytes())
}

// SetRenewalWindow makes the renewal-info endpoint suggest [start, end) for
// leaf (a certificate this server issued), with Pebble's Retry-After of 6 h.
// A window in the past means "renew now".
func (s *Server) SetRenewalWindow(leaf *x509.Certificate, start, end time.Time) error {
	body, err := json.Marshal(core.RenewalInfo{SuggestedWindow: core.SuggestedWindow{
		Start: start.UTC().Truncate(time.Second), End: end.UTC().Truncate(time.Second),
	}})
	if err != nil {
		return fmt.Errorf("testacme: renewal window: %w", err)
	}
	return s.SetRenewalInfo(leaf, string(body))
}

// SetRenewalInfo makes the renewal-info endpoint answer body verbatim for
// leaf (so malformed ARI responses can be tested too); an empty body restores
// Pebble's computed window.
func (s *Server) SetRenewalInfo(leaf *x509.Certificate, body string) error {
	if leaf == nil {
		return errors.New("testacme: set renewal info: nil certificate")
	}
	s.ariMu.Lock()
	defer s.ariMu.Unlock()
	if err := s.store.SetARIResponse(leaf.SerialNumber, body); err != nil {
		return fmt.Errorf("testacme: set renewal info for serial %x: %w", leaf.SerialNumber, err)
	}
	return nil
}
