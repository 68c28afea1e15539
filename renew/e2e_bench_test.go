package renew_test

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"

	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

type legoUser struct {
	key crypto.Signer
	reg *acme.ExtendedAccount
}

func (u *legoUser) GetEmail() string                       { return "" }
func (u *legoUser) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *legoUser) GetPrivateKey() crypto.Signer           { return u.key }

// BenchmarkRenewerVersusLego issues certificates through the Renewer (with
// the acmeissuer, every fsync, verification and journal) and, against the
// same in-process CA, with a bare lego client's Obtain (tuned as testacme
// advises, nothing written to disk). One op is one issuance. The ratio of
// the two is the Renewer's price for crash safety; the p50 difference is
// its own work per renewal.
func BenchmarkRenewerVersusLego(b *testing.B) {
	ca := testacme.New(b, testacme.Options{AlwaysValid: true, ServeHTTP01: true})
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	prev := legolog.Default()
	legolog.SetDefault(quiet) // lego's logger is process-wide
	b.Cleanup(func() { legolog.SetDefault(prev) })
	b.Run("renewer", func(b *testing.B) {
		base := b.TempDir()
		iss := newIssuer(b, ca.DirectoryURL(), ca.CAFile(), "", filepath.Join(base, "account"))
		r := &renew.Renewer{Root: filepath.Join(base, "certs"), Issuer: iss, Roots: ca.RootPool()}
		var d []time.Duration
		i := 0
		for b.Loop() {
			i++
			c := renew.Certificate{Name: fmt.Sprintf("r%d", i), Domains: []string{fmt.Sprintf("r%d.example.test", i)}, Profile: "default"}
			t0 := time.Now()
			if res := r.Run(ctx, c)[0]; res.Outcome != renew.Renewed {
				b.Fatal(res)
			}
			d = append(d, time.Since(t0))
		}
		reportP50(b, d)
	})
	b.Run("lego", func(b *testing.B) {
		key, _ := certcrypto.GeneratePrivateKey(certcrypto.EC256)
		u := &legoUser{key: key}
		cfg := lego.NewConfig(u)
		cfg.CADirURL = ca.DirectoryURL()
		cfg.HTTPClient = ca.HTTPClient()
		cfg.Certificate = lego.CertificateConfig{Timeout: 3 * time.Second, OverallRequestLimit: 1000}
		client, err := lego.NewClient(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := client.Challenge.SetHTTP01Provider(ca.HTTP01Provider()); err != nil {
			b.Fatal(err)
		}
		reg, err := client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
		if err != nil {
			b.Fatal(err)
		}
		u.reg = reg
		var d []time.Duration
		i := 0
		for b.Loop() {
			i++
			t0 := time.Now()
			_, err := client.Certificate.Obtain(ctx, certificate.ObtainRequest{
				Domains: []string{fmt.Sprintf("l%d.example.test", i)}, KeyType: certcrypto.EC256, Profile: "default"})
			if err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
		}
		reportP50(b, d)
	})
}

func reportP50(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(d[len(d)*9/10].Microseconds())/1000, "p90-ms")
}
