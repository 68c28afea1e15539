//go:build race

package acmetest_test

// raceEnabled: the test binary was built with -race, so the external module
// is tested with -race too (and reuses the same build cache entries).
const raceEnabled = true
