package expiry

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseChain(t *testing.T) {
	pki := newPKI(t, span(90*day))
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	full := join(pki.leafPEM, pki.interPEM)
	// A copy of the leaf block with a character of the base64 damaged.
	damaged := bytes.Replace(pki.interPEM, []byte("\n"), []byte("\n*"), 2)
	der := pki.leaf.Raw
	notCert := []byte("-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n")

	tests := []struct {
		name    string
		data    []byte
		count   int      // certificates, when ok
		wantErr error    // sentinel, when not
		msg     []string // substrings of the error
	}{
		{"leaf", pki.leafPEM, 1, nil, nil},
		{"fullchain", full, 2, nil, nil},
		{"with root", join(full, pki.rootPEM), 3, nil, nil},
		{"combined (key first)", join(pki.keyPEM, full), 2, nil, nil},
		{"text around blocks", join([]byte("Certificate:\n    Data: ...\n"), pki.leafPEM, []byte("trailing words\n"), pki.interPEM, []byte("\n\n")), 2, nil, nil},
		{"CRLF line ends", bytes.ReplaceAll(full, []byte("\n"), []byte("\r\n")), 2, nil, nil},
		{"chain only (intermediate first)", join(pki.interPEM, pki.rootPEM), 2, nil, nil},
		{"empty", nil, 0, errNoCertificate, []string{"x.pem", "empty"}},
		{"whitespace", []byte(" \n\t\n"), 0, errNoCertificate, []string{"empty"}},
		{"key only", pki.keyPEM, 0, errNoCertificate, []string{"only PRIVATE KEY PEM blocks"}},
		{"text only", []byte("hello\n"), 0, errNoCertificate, []string{"no PEM data"}},
		{"DER", der, 0, errNoCertificate, []string{"DER-encoded"}},
		{"truncated leaf", pki.leafPEM[:len(pki.leafPEM)/2], 0, errMalformed, []string{"byte 0", "damaged or truncated"}},
		{"truncated second", full[:len(pki.leafPEM)+40], 0, errMalformed, []string{"damaged or truncated"}},
		{"END line missing", bytes.TrimSuffix(bytes.TrimSpace(pki.leafPEM), []byte("-----END CERTIFICATE-----")), 0, errMalformed, []string{"truncated"}},
		{"damaged middle block skipped by pem", join(pki.leafPEM, damaged, pki.rootPEM), 0, errMalformed, []string{"damaged or truncated"}},
		{"damaged last block", join(pki.leafPEM, damaged), 0, errMalformed, []string{"damaged or truncated"}},
		{"not a certificate inside", notCert, 0, errMalformed, []string{"certificate 1", "x509"}},
		{"garbage second certificate", join(pki.leafPEM, notCert), 0, errMalformed, []string{"certificate 2", "byte"}},
		{"reversed order", join(pki.interPEM, pki.leafPEM), 0, errChainOrder, []string{"certificate 2", "example.test"}},
		{"leaf twice", join(pki.leafPEM, pki.leafPEM), 0, errChainOrder, nil},
		{"oversized", join(pki.leafPEM, bytes.Repeat([]byte("#"), maxChainSize)), 0, errTooLarge, []string{"x.pem"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := ParseChain("x.pem", tt.data)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseChain: %v", err)
				}
				if len(certs) != tt.count {
					t.Fatalf("got %d certificates, want %d", len(certs), tt.count)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseChain error = %v, want %v", err, tt.wantErr)
			}
			if certs != nil {
				t.Errorf("certificates returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "expiry: x.pem: ") {
				t.Errorf("error %q does not start by naming the file", err)
			}
			for _, s := range tt.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestParseChainLeafFirst(t *testing.T) {
	pki := newPKI(t, span(6*day))
	certs, err := ParseChain("full.pem", append(append([]byte{}, pki.leafPEM...), pki.interPEM...))
	if err != nil {
		t.Fatal(err)
	}
	if !certs[0].Equal(pki.leaf) || !certs[1].Equal(pki.inter) {
		t.Fatal("certificates not in file order, leaf first")
	}
	if v := (Validity{NotBefore: certs[0].NotBefore, NotAfter: certs[0].NotAfter}); !v.NotBefore.Equal(t0) || v.Lifetime() != 6*day {
		t.Fatalf("validity of the leaf = %+v", v)
	}
}

// TestParseChainAtTheLimit: input of exactly maxChainSize bytes is accepted
// (the table above checks that one byte more is refused).
func TestParseChainAtTheLimit(t *testing.T) {
	pki := newPKI(t, span(90*day))
	data := append(append([]byte{}, pki.leafPEM...), bytes.Repeat([]byte{'\n'}, maxChainSize-len(pki.leafPEM))...)
	if _, err := ParseChain("limit.pem", data); err != nil {
		t.Fatalf("ParseChain of %d bytes: %v", len(data), err)
	}
}

func TestValidityMethods(t *testing.T) {
	v := span(90 * day)
	if v.Remaining(t0) != 90*day || v.Expired(v.NotAfter) || !v.Expired(v.NotAfter.Add(1)) ||
		!v.NotYetValid(t0.Add(-1)) || v.NotYetValid(t0) {
		t.Fatal("Validity helpers disagree with the inclusive bounds")
	}
	if (Validity{NotBefore: t0, NotAfter: t0.Add(-time.Hour)}).Lifetime() != 0 {
		t.Fatal("inverted Lifetime not 0")
	}
}
