// Command order-service is an example Plexus service: POST /orders checks
// the user with user-service through the service client and publishes
// order.created to the "notifications" queue. See docs/examples.md.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/orders"
)

func main() {
	cfg := app.Flags(":8082", nil)
	if err := orders.Run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "order-service:", err)
		os.Exit(1)
	}
}
