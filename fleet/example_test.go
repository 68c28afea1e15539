package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/lockfile"
)

// The shape of one fleet renewal of one lineage, as the renew integration
// will run it. (Not run: it needs an etcd cluster.)
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
	defer c.Close()
	www := fleet.Lineage{Name: "www", Domains: []string{"example.com", "www.example.com"}}

	// Nothing-due check: one range read for every lineage.
	snap, err := c.ReadStates(ctx, www)
	if errors.Is(err, fleet.ErrUnavailable) {
		fmt.Println("etcd unavailable: keep serving, renewal deferred:", err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	if st := snap.States[www.Name]; st.Err != nil || (st.Meta != nil && time.Until(st.Meta.NotAfter) > 30*24*time.Hour) {
		return // bad record (say so) or not due
	}

	lock, err := c.TryLockFenced(ctx, www.Name)
	if errors.Is(err, lockfile.ErrLocked) {
		fmt.Println(err) // another node renews: "held by node ..."
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lock.Unlock()
	// Re-read under the lock (another node may have renewed), resume a
	// journaled order if there is one, else journal the new order before
	// finalizing it:
	_ = c.PutJournal(ctx, lock, www, fleet.Journal{OrderURL: "https://ca/order/1", Names: www.Domains, KeyPEM: []byte("...")})
	// ... finalize, download, verify ...
	err = c.PublishGeneration(ctx, lock, www, fleet.Generation{ /* Meta, CertPEM, ChainPEM, KeyPEM */ })
	if errors.Is(err, fleet.ErrFenced) {
		fmt.Println("lost the lock while renewing; nothing written:", err)
	}
	// Every node then installs ReadGeneration's result into its own lineage
	// with atomicfs, woken by Watch(ctx, snap.Revision).
}
