package renew

import (
	"context"
	"crypto"
	"crypto/x509"
	"time"

	"github.com/renewkit/renewkit/expiry"
)

// KeyType names the kind of private key a certificate is issued for.
type KeyType string

// The supported key types. The zero value means EC256.
const (
	EC256   KeyType = "ec256"
	EC384   KeyType = "ec384"
	RSA2048 KeyType = "rsa2048"
	RSA3072 KeyType = "rsa3072"
	RSA4096 KeyType = "rsa4096"
)

// IssueRequest is what the Renewer asks an Issuer for.
type IssueRequest struct {
	// Name is the lineage name, used in errors and logs.
	Name string
	// Domains are the identifiers to order, the first one being the primary
	// name. The Renewer passes them in canonical form: lower case, no
	// trailing dot, IP addresses as net.IP.String writes them ("::1", not
	// "::0001").
	Domains []string
	// Key is the private key the certificate is issued for. The Renewer creates it
	// (or reuses the installed one) and owns its persistence; the Issuer only signs
	// the CSR with it and must never log it.
	Key crypto.Signer
	// Profile is an ACME profile name (empty: the CA's default).
	Profile string
	// Replaces is the certificate this order replaces (ARI, RFC 9773 §5), or nil.
	Replaces *x509.Certificate
}

// InFlight is the journal record of an order whose finalization is about to be
// requested. It holds what a later process needs to fetch the certificate
// without ordering again (invariant 4). Its journaled form (JSON) carries no
// key material: the order's key is journaled beside it by the Renewer, and
// is only in memory in Key, handed to Resume.
type InFlight struct {
	// OrderURL is the ACME order's URL.
	OrderURL string `json:"order_url"`
	// Domains are the identifiers of the order.
	Domains []string `json:"domains"`
	// Created is when the order was created.
	Created time.Time `json:"created"`
	// Name is the lineage the order is for (Certificate.Name), set by the
	// Renewer when it hands the record to Resumer.Resume so that an Issuer
	// serving several lineages can route it. It is not journaled: the
	// record lives in the lineage's own directory.
	Name string `json:"-"`
	// Key is the order's private key (the one journaled with the record),
	// set by the Renewer when it hands the record to Resumer.Resume so that
	// a Resumer can finalize an order still "ready" instead of the Renewer
	// ordering again. It is never journaled in this record (the Renewer
	// journals the key beside it), must never be logged, and is nil when
	// the order is not for what the lineage is configured to request now
	// (other names or key type): such an order is not finalized.
	Key crypto.Signer `json:"-"`
}

// Issued is a certificate the CA issued.
type Issued struct {
	// Cert is the leaf certificate in PEM.
	Cert []byte
	// Chain is the issuer chain in PEM (leaf excluded), possibly empty.
	Chain []byte
	// Leaf is Cert parsed.
	Leaf *x509.Certificate
	// OrderURL is the order the certificate came from.
	OrderURL string
	// AlreadyReplaced reports that the CA refused to mark the order as
	// replacing IssueRequest.Replaces because another order already replaces
	// it (RFC 9773 alreadyReplaced), so the certificate was ordered without
	// "replaces". Informational: the certificate is valid all the same.
	AlreadyReplaced bool
}

// Issuer obtains certificates from a CA.
//
// Issue must honour ctx in every wait, call journal before finalizing, and
// return errors classified with the backoff package (backoff.Transient,
// backoff.Permanent, backoff.RateLimited) so the Renewer can decide whether to
// retry. Implementations must be safe for concurrent use by several goroutines
// issuing different lineages.
//
// The journal contract: Issue calls journal exactly once per order, after
// the order is ready and before it is finalized (the point of no return:
// after finalize the CA may issue), with the record a later process needs
// to finish the order (see Resumer). journal persists rec durably before
// returning; when it returns an error Issue must not finalize and must
// return that error. Once journal returned, the order may be finalized by
// another process resuming it (see Resumer); an Issue whose own finalize
// the CA then refuses because the order is no longer ready fetches that
// order's certificate, or fails, but never orders again.
type Issuer interface {
	Issue(ctx context.Context, req IssueRequest, journal func(ctx context.Context, rec InFlight) error) (*Issued, error)
}

// Resumer is implemented by an Issuer that can finish an order a previous
// process (or this one) journaled: it polls the order until it is valid and
// downloads its certificate, without creating a new order.
//
// An order still "ready" (its finalize never reached the CA) is finalized
// by Resume with rec.Key, when set, and then collected like a finalized
// one. This is what keeps one order to one certificate when the journaling
// process is not dead but paused (a fleet node stopped past its lease):
// once the resuming process has finalized the order, the paused process's
// late finalize is refused by the CA (the order is no longer ready), and
// whatever it then fetches is the same certificate. A finalize refused
// because another party finalized the order meanwhile is likewise not an
// error: Resume collects that order's certificate.
//
// Resume returns an error that errors.Is ErrOrderGone when the order can no
// longer produce a certificate (invalid, expired or unknown, or "ready"
// with no rec.Key), in which case the Renewer orders anew. An ACME order
// can be finalized and fetched only by the account that placed it: a
// Resumer on another account sees it as unknown.
type Resumer interface {
	Resume(ctx context.Context, rec InFlight) (*Issued, error)
}

// RenewalInfoer is implemented by an Issuer that speaks ACME Renewal
// Information (RFC 9773). RenewalInfo returns the CA's suggested window for
// leaf, or an error that errors.Is errors.ErrUnsupported when the CA offers none.
type RenewalInfoer interface {
	RenewalInfo(ctx context.Context, leaf *x509.Certificate) (expiry.Window, error)
}
