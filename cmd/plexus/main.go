// Command plexus runs a Plexus node and talks to one: the gateway, the
// registry, queues, events and traces in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "plexus:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a code without cobra's usage text.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }
