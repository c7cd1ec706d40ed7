package main

import (
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/telemetry"
)

func TestTracesWaterfall(t *testing.T) {
	t0 := time.Unix(100, 0)
	sp := func(id, parent, name string, off, d time.Duration) telemetry.Span {
		return telemetry.Span{SpanID: id, ParentSpanID: parent, Name: name, Service: "s", Start: t0.Add(off),
			Duration: d, Status: "ok"}
	}
	td := telemetry.TraceDetail{
		Summary: telemetry.TraceSummary{Start: t0, Duration: 100 * time.Millisecond},
		Spans: []telemetry.Span{sp("a", "", "root", 0, 100*time.Millisecond), sp("b", "a", "call", 10*time.Millisecond, 50*time.Millisecond),
			sp("c", "b", "db", 20*time.Millisecond, 10*time.Millisecond), sp("d", "zz", "orphan", 90*time.Millisecond, 10*time.Millisecond)},
	}
	rows := waterfall(td)
	names := []string{}
	for _, r := range rows {
		names = append(names, r[0])
	}
	if got := strings.Join(names, "|"); got != "root|  call|    db|orphan" {
		t.Fatalf("order/indent: %q", got)
	}
	if bar := rows[1][5]; len([]rune(bar)) != 30 || !strings.HasPrefix(bar, "···█") || strings.Count(bar, "█") != 15 {
		t.Fatalf("bar %q", bar)
	}
}
