// Package portholder names, best effort, the process that holds a busy TCP
// port, so that an "address already in use" error can say who to stop.
// It only reads /proc (Linux); elsewhere it knows nothing. It changes
// nothing and is safe for concurrent use.
package portholder
