// Package crashpoint names the instants at which renewkit's crash tests kill
// a renewal process.
//
// In a normal build, [Hit] is an empty function the compiler inlines away:
// production binaries have no crash points, no environment variable is read
// and nothing changes behaviour. Built with the tag renewkit_crashpoints, Hit
// SIGKILLs the calling process when its name ("scope.step") matches the
// RENEWKIT_CRASH_AT environment variable ("NAME" or "NAME#N" for the N-th
// hit, 1-based), so a test can start a child and have it die exactly at a
// named step; RENEWKIT_CRASH_TRACE names a file that every hit is appended
// to, so a test can list the points a run passes.
//
// Points are named by their scope: "renew.*" for the steps of a renewal
// (see the renew package's run), "atomicfs.*" and "acmeissuer.*" inside
// those packages, and "fleet.*" for the fleet path of a renewal (fleet
// mode): fleet.journaled (the order journaled in the fleet, not yet
// finalized), fleet.obtained (the certificate fetched, not yet published)
// and fleet.published (published to the fleet, not yet installed on this
// node).
package crashpoint

// Enabled reports whether this binary was built with crash points.
const Enabled = enabled
