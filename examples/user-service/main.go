// Command user-service is an example Plexus service: users CRUD in memory
// (GET/POST /users, GET /users/{id}), each creation appended to the event
// store as user.created. See docs/examples.md.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/users"
)

func main() {
	cfg := app.Flags(":8081", nil)
	if err := users.Run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "user-service:", err)
		os.Exit(1)
	}
}
