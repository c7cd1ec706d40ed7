package deploy

import (
	"slices"
	"testing"
)

// notMetrics are PromQL words that are never metric names: aggregation
// operators, binary and set operators, modifiers and number words.
var notMetrics = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true,
	"limit_ratio": true, "and": true, "or": true, "unless": true, "atan2": true, "offset": true, "bool": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true,
}

// labelListWords are followed by a parenthesised list of label names.
var labelListWords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true}

func identStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func identChar(c byte) bool { return identStart(c) || (c >= '0' && c <= '9') }

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1
		}
	}
	return len(s)
}

// skipParens returns the index after the bracketed group opening at i.
func skipParens(s string, i int, open, close byte) int {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return j + 1
			}
		case '"', '\'', '`':
			j = skipString(s, j) - 1
		}
	}
	return len(s)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// metricNames lists the metric names a PromQL expression selects: the
// identifiers outside strings, label matchers ({…}), ranges ([…]) and label
// lists (by (…), on (…)) that are neither functions (followed by "("),
// operators nor keywords.
func metricNames(expr string) []string {
	var out []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{':
			i = skipParens(expr, i, '{', '}')
		case c == '[':
			i = skipParens(expr, i, '[', ']')
		case c >= '0' && c <= '9', c == '.':
			for i < len(expr) && (identChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case identStart(c):
			j := i
			for j < len(expr) && identChar(expr[j]) {
				j++
			}
			word, next := expr[i:j], skipSpace(expr, j)
			i = j
			switch {
			case labelListWords[word]:
				if next < len(expr) && expr[next] == '(' {
					i = skipParens(expr, next, '(', ')')
				}
			case notMetrics[word], next < len(expr) && expr[next] == '(':
			default:
				if !slices.Contains(out, word) {
					out = append(out, word)
				}
			}
		default:
			i++
		}
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (service) (rate(plexus_gateway_requests_total{service=~"a|b",code="5.."}[5m]))`,
			[]string{"plexus_gateway_requests_total"}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{instance=~".*"}[1m])))`, []string{"x_bucket"}},
		{`max by (service) (a{status="healthy"}) == 0 and max by (service) (a) > 0`, []string{"a"}},
		{`sum(rate(a[5m])) without (instance) / on (job) group_left (version) b offset 5m`, []string{"a", "b"}},
		{`a{name="sum by (x) (fake)"} unless ignoring(le) c_total`, []string{"a", "c_total"}},
		{`time() - process_start_time_seconds{job="plexus"}`, []string{"process_start_time_seconds"}},
		{`delta(q[15m]) > 1e3 or vector(0)`, []string{"q"}},
		{`topk(3, sum(rate(ns:metric:rate5m[1m])) by (x))`, []string{"ns:metric:rate5m"}},
		{"count_values(\"v\", build_info) * bool 1", []string{"build_info"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%s) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}
