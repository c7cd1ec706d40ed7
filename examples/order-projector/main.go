// Command order-projector is an example Plexus service: the CQRS read
// model of the order saga, a projection of the event store into
// PostgreSQL with its checkpoint in the same transaction as the rows.
// --rebuild starts again from position 0. See docs/examples.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/readmodel"
)

func main() {
	var o readmodel.Options
	cfg := app.Flags(":8085", func(fs *flag.FlagSet) {
		fs.StringVar(&o.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
		fs.StringVar(&o.Schema, "schema", "readmodel", "schema of the read model's tables")
		fs.IntVar(&o.Batch, "batch", 100, "events per transaction")
		fs.BoolVar(&o.Rebuild, "rebuild", false, "empty the read model and rebuild it from position 0")
	})
	if err := readmodel.Run(context.Background(), cfg, o); err != nil {
		fmt.Fprintln(os.Stderr, "order-projector:", err)
		os.Exit(1)
	}
}
