//go:build unix

package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	"github.com/renewkit/renewkit/hooks"
)

// Arguments reach the program verbatim: there is no shell to expand
// variables or split on ";". A hook that needs a shell says so explicitly.
func ExampleCommand() {
	ctx := context.Background()
	ev := hooks.Event{Lineage: "example", Dir: "/var/lib/renewkit/example", Generation: 2}

	out, err := hooks.Command("echo", "$RENEWED_LINEAGE; reboot").RunOutput(ctx, ev)
	fmt.Print(out, "err: ", err, "\n")

	out, err = hooks.Command("sh", "-c", `echo "deploying $RENEWED_LINEAGE"`).RunOutput(ctx, ev)
	fmt.Print(out, "err: ", err, "\n")
	// Output:
	// $RENEWED_LINEAGE; reboot
	// err: <nil>
	// deploying /var/lib/renewkit/example
	// err: <nil>
}

func ExampleCommandHook_Run_failure() {
	err := hooks.Command("sh", "-c", "echo 'nginx: config test failed' >&2; exit 1").
		Run(context.Background(), hooks.Event{Generation: 1})
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		fmt.Println("exit code", exit.ExitCode())
	}
	fmt.Println(err)
	// Output:
	// exit code 1
	// hooks: command [sh -c "echo 'nginx: config test failed' >&2; exit 1"]: exit status 1; output (26 bytes):
	// nginx: config test failed
}
