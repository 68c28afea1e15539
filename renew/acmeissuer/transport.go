package acmeissuer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// lego's acme/api returns parsed bodies and drops most of the HTTP response:
// Retry-After survives only on a 429 rateLimited problem and on challenge
// responses, the status of a non-JSON error body survives only as text, and a
// 409 alreadyReplaced on newOrder is retried silently. recordingTransport sits
// under lego's client and notes, for each call whose context carries a
// *respInfo, what the last response said.

// Limits of a CA response body, enforced by recordingTransport on every
// response before lego reads it: an endless or huge body (a broken CA, or a
// proxy in front of it) costs at most this much memory and time.
const (
	// maxResponseBody bounds a successful response: ACME JSON objects are a
	// few KiB (an order for 100 names is about 20 KiB), and lego caps a
	// certificate chain at the same 1 MiB.
	maxResponseBody = 1 << 20
	// maxErrorBody bounds an error response (status 400 or more): a
	// problem document is a few hundred bytes, a proxy's error page a few
	// KiB.
	maxErrorBody = 64 << 10
)

// errResponseTooLarge is matched (with [errors.Is]) by the error of a
// request whose response body exceeded the limit (1 MiB, or 64 KiB for an
// error status). The body is not read past the limit.
var errResponseTooLarge = errors.New("acmeissuer: CA response body too large")

// limitedBody is a response body cut off at a limit with
// errResponseTooLarge.
type limitedBody struct {
	io.ReadCloser // http.MaxBytesReader over the body
	what          string
}

func newLimitedBody(resp *http.Response, req *http.Request) io.ReadCloser {
	limit := int64(maxResponseBody)
	if resp.StatusCode >= http.StatusBadRequest {
		limit = maxErrorBody
	}
	return &limitedBody{
		ReadCloser: http.MaxBytesReader(nil, resp.Body, limit),
		what:       fmt.Sprintf("%s %s (HTTP %d)", req.Method, req.URL.Redacted(), resp.StatusCode),
	}
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		err = fmt.Errorf("%w: the response to %s exceeds %d bytes", errResponseTooLarge, b.what, mbe.Limit)
	}
	return n, err
}

// respInfo is what recordingTransport learned about the responses of one
// lego call. Safe for concurrent use.
type respInfo struct {
	mu         sync.Mutex
	status     int
	retryAfter time.Duration
	conflicts  int // 409 responses to POSTs (newOrder: alreadyReplaced, retried by lego)
	responses  int
}

type respInfoKey struct{}

// withRespInfo returns a context whose lego requests are recorded in the
// returned respInfo.
func withRespInfo(ctx context.Context) (context.Context, *respInfo) {
	ri := new(respInfo)
	return context.WithValue(ctx, respInfoKey{}, ri), ri
}

func (ri *respInfo) snapshot() (status int, retryAfter time.Duration, conflicts int) {
	if ri == nil {
		return 0, 0, 0
	}
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.status, ri.retryAfter, ri.conflicts
}

// recordingTransport records responses into the request context's respInfo
// and limits every response body (see maxResponseBody).
// During api.New, whose directory fetch lego makes with
// context.Background(), bootCtx (New's caller's context, carrying a respInfo)
// is joined to every request, so that the caller can still cancel it and the
// response is recorded.
type recordingTransport struct {
	base    http.RoundTripper
	now     func() time.Time
	bootCtx atomic.Pointer[context.Context]
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	ri, _ := req.Context().Value(respInfoKey{}).(*respInfo)
	var release func()
	if p := t.bootCtx.Load(); p != nil {
		boot := *p
		if ri == nil {
			ri, _ = boot.Value(respInfoKey{}).(*respInfo)
		}
		ctx, cancel := context.WithCancelCause(req.Context())
		stop := context.AfterFunc(boot, func() { cancel(context.Cause(boot)) })
		release = func() { stop(); cancel(nil) }
		req = req.WithContext(ctx)
	}
	resp, err := base.RoundTrip(req)
	if resp != nil && resp.Body != nil {
		resp.Body = newLimitedBody(resp, req)
	}
	if release != nil {
		if resp == nil {
			release()
		} else {
			resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
		}
	}
	if ri == nil || resp == nil {
		return resp, err
	}
	ra := parseRetryAfter(resp.Header.Get("Retry-After"), t.now())
	ri.mu.Lock()
	ri.responses++
	ri.status = resp.StatusCode
	ri.retryAfter = ra
	if resp.StatusCode == http.StatusConflict && req.Method == http.MethodPost {
		ri.conflicts++
	}
	ri.mu.Unlock()
	return resp, err
}

// releasingBody calls release once when closed.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// parseRetryAfter parses a Retry-After value (delay-seconds or HTTP-date,
// RFC 9110 §10.2.3). Unparseable, negative or past values give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		const maxSeconds = int64(1<<63-1) / int64(time.Second)
		if s > maxSeconds {
			s = maxSeconds
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
