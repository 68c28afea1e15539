package expiry

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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
	if v := ValidityOf(certs[0]); !v.NotBefore.Equal(t0) || v.Lifetime() != 6*day {
		t.Fatalf("ValidityOf(leaf) = %+v", v)
	}
}

func TestReadChain(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, span(90*day))
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("fullchain.pem", append(append([]byte{}, pki.leafPEM...), pki.interPEM...))
	certs, err := ReadChain(good)
	if err != nil || len(certs) != 2 {
		t.Fatalf("ReadChain = %d certs, %v", len(certs), err)
	}

	t.Run("missing", func(t *testing.T) {
		p := filepath.Join(dir, "nope.pem")
		_, err := ReadChain(p)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
			t.Fatalf("error = %v, want fs.ErrNotExist naming %s", err, p)
		}
	})
	t.Run("directory", func(t *testing.T) {
		_, err := ReadChain(dir)
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Fatalf("error = %v, want one naming %s", err, dir)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		p := write("big.pem", append(append([]byte{}, pki.leafPEM...), bytes.Repeat([]byte{'\n'}, maxChainSize)...))
		_, err := ReadChain(p)
		if !errors.Is(err, errTooLarge) || !strings.Contains(err.Error(), p) {
			t.Fatalf("error = %v, want errTooLarge naming %s", err, p)
		}
	})
	t.Run("exactly the limit", func(t *testing.T) {
		data := append(append([]byte{}, pki.leafPEM...), bytes.Repeat([]byte{'\n'}, maxChainSize-len(pki.leafPEM))...)
		p := write("limit.pem", data)
		if _, err := ReadChain(p); err != nil {
			t.Fatalf("ReadChain of %d bytes: %v", len(data), err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		p := write("trunc.pem", pki.leafPEM[:100])
		_, err := ReadChain(p)
		if !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), p) {
			t.Fatalf("error = %v, want errMalformed naming %s", err, p)
		}
	})
}

func TestValidityOfNil(t *testing.T) {
	if v := ValidityOf(nil); v != (Validity{}) {
		t.Fatalf("ValidityOf(nil) = %+v", v)
	}
	v := span(90 * day)
	if v.Remaining(t0) != 90*day || v.Expired(v.NotAfter) || !v.Expired(v.NotAfter.Add(1)) ||
		!v.NotYetValid(t0.Add(-1)) || v.NotYetValid(t0) {
		t.Fatal("Validity helpers disagree with the inclusive bounds")
	}
	if (Validity{NotBefore: t0, NotAfter: t0.Add(-time.Hour)}).Lifetime() != 0 {
		t.Fatal("inverted Lifetime not 0")
	}
}
