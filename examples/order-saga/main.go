// Command order-saga is an example Plexus service: orders go through a
// saga (stock reserved, payment taken, order confirmed; compensated when a
// step fails) driven through the order-saga queue and recorded in the
// event store. See docs/examples.md.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/saga"
)

func main() {
	cfg := app.Flags(":8084", nil)
	if err := saga.Run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "order-saga:", err)
		os.Exit(1)
	}
}
