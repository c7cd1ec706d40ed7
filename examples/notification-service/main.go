// Command notification-service is an example Plexus service: it consumes
// the "notifications" queue, logs a line per notification and serves
// GET /sent with a count. See docs/examples.md.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/notify"
)

func main() {
	cfg := app.Flags(":8083", nil)
	if err := notify.Run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "notification-service:", err)
		os.Exit(1)
	}
}
