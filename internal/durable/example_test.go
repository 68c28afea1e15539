package durable_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/renewkit/renewkit/internal/durable"
)

func ExampleWriteFile() {
	dir, err := os.MkdirTemp("", "durable-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state.json")

	// Readers see the old content or the new one, never a mix; after WriteFile
	// returns, the new content survives a power loss.
	if err := durable.WriteFile(path, []byte(`{"generation":1}`+"\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	fmt.Printf("%s%v\n", b, fi.Mode().Perm())
	// Output:
	// {"generation":1}
	// -rw-------
}
