package testacme_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/registration"

	"github.com/renewkit/renewkit/internal/testacme"
)

// Issue a certificate from the in-process CA with lego, validating HTTP-01
// for real through the server's token server, and inject a fault on the way.
func Example() {
	s, err := testacme.Start(testacme.Options{ServeHTTP01: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := &user{key: key}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = s.DirectoryURL()
	cfg.HTTPClient = s.HTTPClient()
	cfg.Certificate = lego.CertificateConfig{Timeout: 3 * time.Second, OverallRequestLimit: 1000}
	client, err := lego.NewClient(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if u.reg, err = client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		fmt.Println(err)
		return
	}
	if err := client.Challenge.SetHTTP01Provider(s.HTTP01Provider()); err != nil {
		fmt.Println(err)
		return
	}

	s.Inject(testacme.BadNonce(testacme.EndpointNewOrder, 2)) // lego retries these

	res, err := client.Certificate.Obtain(ctx, certificate.ObtainRequest{
		Domains: []string{"www.example.test"},
		KeyType: certcrypto.EC256,
		Profile: "shortlived",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	leaf, _ := certcrypto.ParsePEMCertificate(res.Certificate)
	fmt.Println("names:", leaf.DNSNames)
	fmt.Println("lifetime:", leaf.NotAfter.Sub(leaf.NotBefore).Round(time.Hour))
	fmt.Printf("stats: %+v\n", s.Stats("www.example.test"))
	fmt.Println("faults fired:", s.FaultStats().Fired)
	// Output:
	// names: [www.example.test]
	// lifetime: 144h0m0s
	// stats: {Orders:1 Replacing:0 Issued:1 MaxConcurrentOrders:1}
	// faults fired: 2
}
