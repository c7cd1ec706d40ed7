package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "plexus",
		Short:         "Plexus: discovery, gateway, queues, events and tracing in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnv(cmd.Flags())
		},
	}
	root.AddCommand(
		newUpCmd(),
		newServeCmd(),
		newHealthCmd(),
		newVersionCmd(),
		newServicesCmd(),
		newEventsCmd(),
		newTracesCmd(),
		newQueueCmd(),
	)
	return root
}

// bindEnv fills every flag not given on the command line from PLEXUS_<NAME>
// (dashes become underscores), so each flag has its variable.
func bindEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := "PLEXUS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}
