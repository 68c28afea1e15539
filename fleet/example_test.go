package fleet_test

import (
	"context"
	"fmt"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// A node of a fleet: the same Renewer as on a single machine, with the
// fleet's Client as its Fleet. Every node runs this (from a timer, or
// Serve, which also follows Client.Watch); across the fleet, one node
// orders each due renewal and every node installs the generation it
// publishes. (Not run: it needs an etcd cluster and a CA.)
func Example() {
	ctx := context.Background()
	c, err := fleet.Dial(fleet.Config{
		Endpoints:   []string{"https://etcd1:2379", "https://etcd2:2379", "https://etcd3:2379"},
		CAFile:      "/etc/renewkit/etcd-ca.pem",
		CertFile:    "/etc/renewkit/node.pem",
		KeyFile:     "/etc/renewkit/node-key.pem",
		SealKeyFile: "/etc/renewkit/fleet-seal.key",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close() // revokes the lease: this node's fleet locks go at once

	issuer, err := acmeissuer.New(ctx, acmeissuer.Config{
		DirectoryURL: "https://acme-v02.api.letsencrypt.org/directory",
		AgreeTOS:     true,
		AccountDir:   "/var/lib/renewkit/account",
		HTTP01:       &acmeissuer.HTTP01{Addr: ":80"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := &renew.Renewer{Root: "/var/lib/renewkit", Issuer: issuer, Fleet: c}
	for _, res := range r.Run(ctx, renew.Certificate{Name: "www", Domains: []string{"example.com", "www.example.com"}}) {
		// etcd unreachable: the installed certificate is still served; the
		// renewal waits for the fleet rather than ordering alone.
		if res.Outcome == renew.Deferred {
			fmt.Println("renewal deferred:", res.Err)
			continue
		}
		fmt.Println(res.Name, res.Outcome, res.Err)
	}
}
