// Package faults holds the fault tests of issue 10: the real plexus binary
// as a child process, broken the way operators and clients break it — two
// nodes on one data dir, a full disk, stale queue receipts, reconnecting
// subscribers, publishers racing on a full queue — and checked for what a
// client may rely on: nothing acknowledged lost, every failure a clear,
// retryable answer. Each test logs its counts (acknowledged, lost,
// duplicated). The package has no code of its own.
package faults
