//go:build !race

package acmetest_test

const raceEnabled = false
