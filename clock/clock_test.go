package clock_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/plexushq/plexus/clock"
)

func TestManualMovesOnlyWhenTold(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := clock.NewManual(t0)
	if !m.Now().Equal(t0) {
		t.Fatalf("Now %v, want %v", m.Now(), t0)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); m.Advance(time.Second) }()
	}
	wg.Wait()
	if got := m.Now().Sub(t0); got != 10*time.Second {
		t.Fatalf("advanced %v, want 10s", got)
	}
	m.Set(t0)
	if !m.Now().Equal(t0) {
		t.Fatal("Set did not move the clock")
	}
}

func TestSystemAndOr(t *testing.T) {
	if !clock.IsSystem(nil) || !clock.IsSystem(clock.System) || clock.IsSystem(clock.NewManual(time.Time{})) {
		t.Fatal("IsSystem")
	}
	if clock.Or(nil) != clock.System {
		t.Fatal("Or(nil) is not System")
	}
	before := time.Now()
	if now := clock.System.Now(); now.Before(before) {
		t.Fatalf("System.Now %v before %v", now, before)
	}
}

func ExampleManual() {
	c := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.Advance(90 * time.Second)
	fmt.Println(c.Now().Format(time.TimeOnly))
	// Output: 00:01:30
}
