package acmeissuer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/go-acme/lego/v5/acme"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/textclip"
)

// errClosed is returned by an [Issuer] used after [Issuer.Close].
var errClosed = errors.New("acmeissuer: issuer closed")

// Error is a failure of one step of an ACME exchange. Issue, Resume and
// RenewalInfo return it wrapped in a backoff class (backoff.Transient,
// backoff.Permanent or backoff.RateLimited) — or, when the caller's context
// ended, unclassified with Err matching ctx.Err(). Use errors.As to get it.
type Error struct {
	// Name is the certificate: IssueRequest.Name in Issue, the first
	// journaled domain in Resume, the leaf's first name in RenewalInfo.
	Name string
	// Step is what was being done: "account", "new order",
	// "authorization NAME", "dns record lock", "dns sequence interval",
	// "challenge http-01 for NAME", "dns propagation for NAME", "order ready", "journal", "csr", "finalize", "order poll",
	// "download", "resume", "renewal info".
	Step string
	// ProblemType is the ACME problem type URN the CA sent
	// ("urn:ietf:params:acme:error:rateLimited"), or "" if none.
	ProblemType string
	// Detail is the problem document's detail (with its subproblems), or
	// "". It is clipped to 1 KiB, like the text of Err in Error's message:
	// what a CA sends reaches logs and state files bounded.
	Detail string
	// Status is the HTTP status of the failed response, or 0 if none (a
	// network error, or a validation failure reported inside a challenge).
	Status int
	// RetryAfter is the CA's Retry-After, or 0 if it sent none.
	RetryAfter time.Duration
	// Err is the underlying error (lego's, the network's, or ctx.Err()).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("acmeissuer: ")
	if e.Name != "" {
		fmt.Fprintf(&b, "certificate %q: ", e.Name)
	}
	b.WriteString(e.Step)
	b.WriteString(": ")
	if e.ProblemType != "" {
		fmt.Fprintf(&b, "ACME %s", strings.TrimPrefix(e.ProblemType, problemNS))
		if e.Status != 0 {
			fmt.Fprintf(&b, " (HTTP %d)", e.Status)
		}
		if e.Detail != "" {
			b.WriteString(": ")
			b.WriteString(e.Detail)
		}
	} else if e.Err != nil {
		b.WriteString(textclip.Head(e.Err.Error(), maxErrText))
	} else {
		b.WriteString("failed")
	}
	return b.String() // a Retry-After is printed by backoff.RateLimited's wrapper
}

func (e *Error) Unwrap() error { return e.Err }

const problemNS = "urn:ietf:params:acme:error:"

// Bounds of the CA-supplied text an *Error carries into its message.
const (
	maxDetail  = 1 << 10
	maxErrText = 2 << 10
)

// class is a backoff class, or stop (the caller's context ended).
type class int

const (
	classTransient class = iota
	classPermanent
	classRateLimited
	classStop
)

func (c class) String() string {
	switch c {
	case classTransient:
		return "transient"
	case classPermanent:
		return "permanent"
	case classRateLimited:
		return "rate-limited"
	}
	return "stop"
}

// transientTypes are problem types worth retrying soon. Every other type the
// CA names is permanent for this attempt (rateLimited is its own class).
var transientTypes = map[string]bool{
	acme.BadNonceErrorType:       true,
	acme.ServerInternalErrorType: true,
}

// knownTypes are the IANA-registered ACME problem types; an unregistered type
// sent with a 5xx status is treated as a server failure (transient).
var knownTypes = map[string]bool{
	acme.AccountDoesNotExistErrorType: true, acme.AlreadyReplacedErrorType: true,
	acme.AlreadyRevokedErrorType: true, acme.BadCSRErrorType: true,
	acme.BadNonceErrorType: true, acme.BadPublicKeyErrorType: true,
	acme.BadRevocationReasonErrorType: true, acme.BadSignatureAlgorithmErrorType: true,
	acme.CaaErrorType: true, acme.CompoundErrorType: true, acme.ConnectionErrorType: true,
	acme.DNSErrorType: true, acme.ExternalAccountRequiredErrorType: true,
	acme.IncorrectResponseErrorType: true, acme.InvalidContactErrorType: true,
	acme.MalformedErrorType: true, acme.OrderNotReadyErrorType: true,
	acme.RateLimitedErrorType: true, acme.RejectedIdentifierErrorType: true,
	acme.ServerInternalErrorType: true, acme.TLSErrorType: true,
	acme.UnauthorizedErrorType: true, acme.UnsupportedContactErrorType: true,
	acme.UnsupportedIdentifierErrorType: true, acme.UserActionRequiredErrorType: true,
	acme.InvalidProfileErrorType: true,
}

// classify builds the *Error for err, a failure of step, and decides its
// class. ri (may be nil) is what the transport saw of the failed call; pass
// nil for a problem that did not come from an HTTP error response (a
// challenge's validation error).
//
// The rules, in order:
//   - the caller's context ended → stop, Err = ctx.Err();
//   - problem type rateLimited (any status) or HTTP 429 → rate-limited;
//   - problem type badNonce or serverInternal → transient;
//   - any other registered problem type → permanent;
//   - HTTP 5xx (an unregistered type, or a non-JSON body such as a proxy's
//     HTML page) → transient;
//   - any other HTTP 4xx → permanent;
//   - a network error, or no response at all → transient;
//   - a response lego could not use (2xx with a bad body, or one over
//     the body limit, see errResponseTooLarge) → permanent;
//   - finally, a transient failure whose response carried Retry-After
//     becomes rate-limited with that delay.
func classify(ctx context.Context, name, step string, err error, ri *respInfo) (*Error, class) {
	e := &Error{Name: name, Step: step, Err: err}
	status, retryAfter, _ := ri.snapshot()
	e.Status, e.RetryAfter = status, retryAfter
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.Err = ctxErr
		e.Status, e.RetryAfter = 0, 0
		return e, classStop
	}
	var pd *acme.ProblemDetails
	if errors.As(err, &pd) && pd != nil {
		e.ProblemType, e.Detail = pd.Type, pd.Detail
		if ri == nil || e.Status == 0 {
			e.Status = pd.HTTPStatus
		}
		if pd.Type == acme.UserActionRequiredErrorType && pd.Instance != "" {
			e.Detail += " (see " + pd.Instance + ")"
		}
		for _, sp := range pd.SubProblems {
			e.Detail += fmt.Sprintf("; %s: %s %s", sp.Identifier.Value, strings.TrimPrefix(sp.Type, problemNS), sp.Detail)
			if len(e.Detail) > maxDetail {
				break
			}
		}
		e.Detail = textclip.Head(e.Detail, maxDetail)
		e.ProblemType = textclip.Head(e.ProblemType, maxDetail)
	}
	if rl, ok := errors.AsType[*acme.RateLimitedError](err); ok && rl.RetryAfter > e.RetryAfter {
		e.RetryAfter = rl.RetryAfter
	}
	c := classTransient
	switch {
	case e.ProblemType == acme.RateLimitedErrorType || e.Status == http.StatusTooManyRequests:
		c = classRateLimited
	case transientTypes[e.ProblemType]:
		c = classTransient
	case knownTypes[e.ProblemType]:
		c = classPermanent
	case e.Status >= 500:
		c = classTransient
	case e.Status >= 400:
		c = classPermanent
	case isNetworkError(err):
		c = classTransient
	case e.Status > 0:
		// The exchange completed but lego rejected the answer (an
		// unparseable body, identifiers changed by the CA): a protocol
		// violation that retrying in seconds will not fix.
		c = classPermanent
	}
	if c == classTransient && e.RetryAfter > 0 {
		c = classRateLimited
	}
	return e, c
}

// isNetworkError reports whether err comes from the transport rather than
// from a response.
func isNetworkError(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// wrapClass applies the backoff class to e.
func wrapClass(e *Error, c class) error {
	switch c {
	case classPermanent:
		return backoff.Permanent(e)
	case classRateLimited:
		return backoff.RateLimited(e, e.RetryAfter)
	case classStop:
		return e
	}
	return backoff.Transient(e)
}

// fail classifies and wraps err; see classify.
func fail(ctx context.Context, name, step string, err error, ri *respInfo) error {
	return wrapClass(classify(ctx, name, step, err, ri))
}

// permanent returns a permanent *Error for a failure of our own making
// (configuration, request, an answer that breaks the protocol).
func permanent(name, step string, err error) error {
	return backoff.Permanent(&Error{Name: name, Step: step, Err: err})
}

// transient returns a transient *Error for a failure of our own making
// (a timeout waiting for the CA).
func transient(name, step string, err error, retryAfter time.Duration) error {
	e := &Error{Name: name, Step: step, Err: err, RetryAfter: retryAfter}
	if retryAfter > 0 {
		return backoff.RateLimited(e, retryAfter)
	}
	return backoff.Transient(e)
}

// stopped returns the error for a context that ended during step.
func stopped(ctx context.Context, name, step string) error {
	return &Error{Name: name, Step: step, Err: ctx.Err()}
}
