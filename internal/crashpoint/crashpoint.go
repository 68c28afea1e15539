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
// Points are named by their scope and, where the scope has a numbered
// step list, after the step they follow: "renew.run:N" after step N of a
// renewal (the one step list of the renew package's run, in single-node
// and fleet mode alike: renew.run:8:journal and renew.run:8:journaled
// around the order journal's write, renew.run:10 after the publish to the
// fleet, renew.run:15:hook after each hook), "atomicfs.install:N" and
// "atomicfs.activate:N" inside atomicfs, "acmeissuer.*" inside the ACME
// issuer.
package crashpoint

// Enabled reports whether this binary was built with crash points.
const Enabled = enabled
