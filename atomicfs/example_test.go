package atomicfs_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/renewkit/renewkit/atomicfs"
)

func ExampleStore() {
	root, err := os.MkdirTemp("", "atomicfs-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)

	// The caller holds the lineage lock (package lockfile) from here on.
	s, err := atomicfs.Open(filepath.Join(root, "example.com"), atomicfs.Modes{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := 1; i <= 2; i++ {
		g, err := s.Install(atomicfs.Files{
			Cert:  fmt.Appendf(nil, "CERTIFICATE %d\n", i),
			Chain: []byte("ISSUER\n"),
			Key:   fmt.Appendf(nil, "KEY %d\n", i),
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		// Record pending deploy hooks here, then switch.
		if err := s.Activate(g); err != nil {
			fmt.Println(err)
			return
		}
	}
	cur, _ := s.Current()
	fmt.Println("current generation:", cur.Seq, filepath.Base(cur.Dir))

	// Servers are configured with the stable links.
	b, _ := os.ReadFile(filepath.Join(s.Dir(), atomicfs.CombinedFile))
	fmt.Print(string(b))

	removed, _ := s.Prune(1)
	fmt.Println("pruned:", len(removed))
	// Output:
	// current generation: 2 000002
	// KEY 2
	// CERTIFICATE 2
	// ISSUER
	// pruned: 1
}

func ExampleStore_Recover() {
	root, err := os.MkdirTemp("", "atomicfs-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)
	dir := filepath.Join(root, "example.com")

	// A run installs generation 1 and dies before activating it.
	s, _ := atomicfs.Open(dir, atomicfs.Modes{})
	if _, err := s.Install(atomicfs.Files{Cert: []byte("CERT\n"), Key: []byte("KEY\n")}); err != nil {
		fmt.Println(err)
		return
	}

	// The next run recovers and rolls forward.
	s, _ = atomicfs.Open(dir, atomicfs.Modes{})
	rep, err := s.Recover()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("newer than current:", len(rep.Newer))
	if len(rep.Newer) > 0 {
		if err := s.Activate(rep.Newer[len(rep.Newer)-1]); err != nil {
			fmt.Println(err)
			return
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, atomicfs.CertFile))
	fmt.Print("serving: ", string(b))
	// Output:
	// newer than current: 1
	// serving: CERT
}
