package faults

import (
	"os"
	"testing"

	"github.com/plexushq/plexus/internal/plexustest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	plexustest.Cleanup()
	os.Exit(code)
}
