package benchutil

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Table is a Markdown table, printed as it is so it can be pasted into
// docs/BENCHMARKS.md.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
}

// Add appends a row.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

// Fprint writes the table.
func (t *Table) Fprint(w io.Writer) {
	if t.Title != "" {
		fmt.Fprintf(w, "\n%s\n\n", t.Title)
	}
	width := make([]int, len(t.Header))
	for i, h := range t.Header {
		width[i] = len([]rune(h))
	}
	for _, r := range t.Rows {
		for i, c := range r {
			if i < len(width) && len([]rune(c)) > width[i] {
				width[i] = len([]rune(c))
			}
		}
	}
	line := func(cells []string) {
		fmt.Fprint(w, "|")
		for i := range width {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			fmt.Fprintf(w, " %s%s |", c, strings.Repeat(" ", width[i]-len([]rune(c))))
		}
		fmt.Fprintln(w)
	}
	line(t.Header)
	fmt.Fprint(w, "|")
	for i := range width {
		fmt.Fprintf(w, "%s|", strings.Repeat("-", width[i]+2))
	}
	fmt.Fprintln(w)
	for _, r := range t.Rows {
		line(r)
	}
}

// Ratio formats a ÷ b as "1.23×", or "–" when b is 0.
func Ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// Machine describes the host for the record.
func Machine() string {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				mem = strings.Join(strings.Fields(l)[1:], " ")
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("date %s; %d CPUs (%s); memory %s; kernel %s; %s",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), model, mem,
		strings.TrimSpace(string(kernel)), runtime.Version())
}
