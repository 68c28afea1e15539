package migrate

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/renewkit/renewkit/renew"
)

// State is what Read found in another client's directory.
type State struct {
	// Tool is "certbot" or "lego"; From the directory read.
	Tool, From string
	// Lineages are the client's certificates, sorted by name; each says
	// whether it can be imported (Err nil) and what does not carry over.
	Lineages []*Lineage
	// Accounts are the client's ACME accounts, by ID (certbot's account
	// ID; lego's e-mail address).
	Accounts map[string]*Account
}

// Lineage is one certificate of the other client.
type Lineage struct {
	// Name is the lineage name, the same as the other client's.
	Name string
	// Source is the file that describes it (certbot's renewal conf,
	// lego's .crt).
	Source string
	// Server is the ACME directory URL it renews at; Account the ID of
	// its account in State.Accounts ("" when unknown).
	Server, Account string
	// Domains are the certificate's names, as the leaf lists them.
	Domains []string
	// KeyType is its key's type; ReuseKey whether the client keeps the
	// key across renewals.
	KeyType  renew.KeyType
	ReuseKey bool
	// Policy is the renew-certificates policy ("" for the default).
	Policy string
	// Challenge is how renewals validate; Hooks the deploy hooks, argv.
	Challenge Challenge
	Hooks     [][]string
	// Files are the current certificate, chain and key.
	Files renew.Existing
	// Serial (hex) and NotAfter are the current certificate's.
	Serial   string
	NotAfter time.Time
	// Notes are what does not carry over, for the plan.
	Notes []string
	// Err says why the lineage cannot be imported; nil when it can.
	Err error
}

// Challenge is a lineage's [certificate.challenge].
type Challenge struct {
	Type    string // "http-01"
	Webroot string // HTTP-01 through a web server's document root
	Listen  string // HTTP-01 by renew-certificates' own listener
}

// Account is one ACME account of the other client.
type Account struct {
	// ID is certbot's account ID or lego's e-mail address; Email the
	// contact, when known.
	ID, Email string
	// Server is the ACME directory URL; URL the account's URL there.
	Server, URL string
	// Key is the account's private key: PEM, or a JSON Web Key (certbot).
	Key []byte
	// Source is the account's directory.
	Source string
	// Err says why the account cannot be used; nil when it can.
	Err error
}

// certInfo fills l's Domains, Serial, NotAfter and KeyType from l.Files
// and checks that the key is the certificate's (the full check, chain and
// validity included, is renew's VerifyExisting, done by Import).
func (l *Lineage) certInfo() error {
	leaf, err := firstCert(l.Files.Cert)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(l.Files.Key)
	if blk == nil {
		return errors.New("the private key file holds no PEM block (empty or truncated)")
	}
	key, err := parsePrivateKey(blk.Bytes)
	if err != nil {
		return err
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		return errors.New("the private key does not match the certificate")
	}
	l.Domains = slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		l.Domains = append(l.Domains, ip.String())
	}
	if len(l.Domains) == 0 {
		return errors.New("the certificate names no DNS name or IP address")
	}
	l.Serial = fmt.Sprintf("%x", leaf.SerialNumber)
	l.NotAfter = leaf.NotAfter
	l.KeyType = keyTypeOf(key.Public())
	if l.KeyType == "" {
		return errors.New("the key's type is none renewkit issues (ec256, ec384, rsa2048, rsa3072, rsa4096)")
	}
	return nil
}

// firstCert parses the first PEM certificate of b.
func firstCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("the certificate file holds no PEM certificate (empty or truncated)")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the certificate does not parse: %w", err)
	}
	return c, nil
}

// parsePrivateKey parses a DER private key: PKCS #8, PKCS #1 or SEC 1.
func parsePrivateKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("the private key does not parse (truncated, or not PKCS #8, PKCS #1 or SEC 1)")
}

// keyTypeOf names pub's type as renew does, "" for one it does not issue.
func keyTypeOf(pub crypto.PublicKey) renew.KeyType {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return renew.EC256
		case elliptic.P384():
			return renew.EC384
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return renew.RSA2048
		case 3072:
			return renew.RSA3072
		case 4096:
			return renew.RSA4096
		}
	}
	return ""
}

// shellMeta are the characters that make a hook command need a shell.
const shellMeta = "|&;<>()$`\\\"'*?[]#~=%{}\n"

// hookArgv turns a hook command line the other client ran with a shell
// into argv: split on spaces when nothing in it needs a shell, else
// /bin/sh -c with the line (noted in the plan: renewkit never adds a shell
// by itself, so the configuration shows it).
func hookArgv(line string) (argv []string, viaShell bool) {
	if strings.ContainsAny(line, shellMeta) {
		return []string{"/bin/sh", "-c", line}, true
	}
	return strings.Fields(line), false
}
