package crashtest_test

// The suite builds the CLI in TestMain, which the go command's test cache
// does not see. Importing the packages the CLI is made of makes a change
// to any of them invalidate cached results of this package.
import (
	_ "github.com/renewkit/renewkit/atomicfs"
	_ "github.com/renewkit/renewkit/fleet"
	_ "github.com/renewkit/renewkit/hooks"
	_ "github.com/renewkit/renewkit/lockfile"
	_ "github.com/renewkit/renewkit/metrics"
	_ "github.com/renewkit/renewkit/renew"
	_ "github.com/renewkit/renewkit/renew/acmeissuer"
)
