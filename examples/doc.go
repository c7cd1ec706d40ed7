// Package examples holds runnable example services built on Plexus's
// packages; see docs/examples.md. user-service, order-service and
// notification-service are commands; their logic is in internal/ so that
// examples_test.go runs all three in-process against a real node.
package examples
