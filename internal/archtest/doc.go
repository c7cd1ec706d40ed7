// Package archtest holds tests of the repository's shape, read from its
// source: what the conventions (CONVENTIONS.md's "siblings look alike",
// issue 12) say must exist once, or must look the same everywhere, is
// checked here so that a second copy fails a test instead of waiting to
// diverge.
package archtest
