package eventstore

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestParseAck(t *testing.T) {
	for _, tc := range []struct {
		in  string
		seq uint64
		ok  bool
	}{
		{`{"stream":"PLEXUS_EVENTS","seq":42}`, 42, true},
		{`{"stream":"PLEXUS_EVENTS","domain":"x","seq":7,"batch":"b","count":3}`, 7, true},
		{`{"stream":"PLEXUS_EVENTS","seq":9,"duplicate":true}`, 0, false},
		{`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"PLEXUS_EVENTS","seq":0}`, 0, false},
		{`{"stream":"PLEXUS_EVENTS"}`, 0, false},
	} {
		ack, ok := parseAck([]byte(tc.in))
		if ok != tc.ok || ack.Seq != tc.seq {
			t.Errorf("%s: got %d %v", tc.in, ack.Seq, ok)
		}
	}
}

var (
	nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$`)
	typeRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,127}$`)
)

func FuzzValidNameMatchesRegexp(f *testing.F) {
	for _, s := range []string{"user-1", "a", "", "-a", "a.b_c-d", "a:b", "x y", "ü", "a~b", string(make([]byte, 129))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidStreamName(s) != nameRe.MatchString(s) || ValidType(s) != typeRe.MatchString(s) {
			t.Fatalf("%q: stream %v type %v", s, ValidStreamName(s), ValidType(s))
		}
	})
}

func TestSubjectRoundTrip(t *testing.T) {
	for _, tc := range []struct{ stream, typ, cat string }{
		{"user-1", "user.created", "user"}, {"orders", "placed", "orders"}, {"a.b-c.d", "x:y.z", "a.b"},
	} {
		if Category(tc.stream) != tc.cat {
			t.Fatalf("category of %q: %q", tc.stream, Category(tc.stream))
		}
		st, ty, ok := parseSubject(streamPrefix(tc.stream) + token(tc.typ))
		if !ok || st != tc.stream || ty != tc.typ {
			t.Fatalf("round trip %+v: %q %q %v", tc, st, ty, ok)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"fromPosition=0&types=a,b&category=user&since=2026-01-02T03:04:05Z&limit=100",
		"fromPosition=end&types=user.created", "limit=-1", "types=a%20b", "since=yesterday", "fromPosition=18446744073709551616", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := http.NewRequest(http.MethodGet, "http://x/v1/events", nil)
		if err != nil {
			t.Skip()
		}
		r.URL.RawQuery = raw
		q, p := parseQuery(r)
		if p != nil {
			if p.Status != http.StatusBadRequest {
				t.Fatalf("status %d", p.Status)
			}
			return
		}
		if err := q.Validate(); err != nil {
			t.Fatalf("accepted an invalid query %+v: %v", q, err)
		}
		for _, f := range filterSubjects(q.Category, q.Types) {
			if strings.Count(f, ".") > 5 || strings.ContainsAny(f, " \t\r\n") {
				t.Fatalf("filter %q", f)
			}
		}
	})
}

func FuzzSubjectRoundTrip(f *testing.F) {
	f.Add("user-1", "user.created")
	f.Add("a.b-c", "x:y")
	f.Fuzz(func(t *testing.T, stream, typ string) {
		if !ValidStreamName(stream) || !ValidType(typ) {
			return
		}
		st, ty, ok := parseSubject(streamPrefix(stream) + token(typ))
		if !ok || st != stream || ty != typ {
			t.Fatalf("%q %q → %q %q %v", stream, typ, st, ty, ok)
		}
	})
}
