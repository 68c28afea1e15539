// Package safefile reads files a program trusts without being hung or
// flooded by what it finds, and checks the ownership and mode of files and
// directories like sshd's StrictModes. It is shared by atomicfs (which
// re-exports ErrInsecure), renew, acmeissuer and the CLI.
//
// # Crash safety
//
// The package only reads and stats: it keeps no state and writes nothing, so
// a crash at any point loses nothing of its own.
package safefile
