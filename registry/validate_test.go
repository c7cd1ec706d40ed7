package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

func TestNormalizeDefaults(t *testing.T) {
	t.Parallel()
	inst, err := (&Registration{URL: "http://h:1"}).Normalize("svc", "a")
	if err != nil {
		t.Fatal(err)
	}
	c := inst.Check
	if inst.Weight != 1 || inst.TTL != DefaultTTL || c.Path != "/health" || c.Interval != 10*time.Second ||
		c.Timeout != 5*time.Second || c.Rise != 2 || c.Fall != 2 {
		t.Fatalf("defaults %+v", inst)
	}
	// A short interval caps the default timeout.
	inst, err = (&Registration{URL: "http://h:1", Check: &Check{Interval: time.Second}}).Normalize("svc", "a")
	if err != nil || inst.Check.Timeout != time.Second {
		t.Fatalf("timeout %v %v", inst.Check.Timeout, err)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"user-service", true}, {"a.b_c-1", true}, {strings.Repeat("a", 128), true},
		{"", false}, {"-a", false}, {".a", false}, {"a.", false}, {"a..b", false}, {"a b", false},
		{"a*", false}, {"a>", false}, {strings.Repeat("a", 129), false}, {"ü", false},
	} {
		if err := ValidateService(tc.name); (err == nil) != tc.ok {
			t.Errorf("service %q: %v", tc.name, err)
		} else if err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("service %q: %v is not ErrBadName", tc.name, err)
		}
	}
	for _, tc := range []struct {
		id string
		ok bool
	}{{"a", true}, {"pod-7_x", true}, {"a.b", false}, {"", false}, {"_a", false}, {"a/b", false}} {
		if err := ValidateID(tc.id); (err == nil) != tc.ok {
			t.Errorf("id %q: %v", tc.id, err)
		}
	}
}

// FuzzRegistration runs the registration decoder and validation on
// arbitrary bodies: no panics, and whatever passes respects every bound
// and survives a JSON round trip unchanged.
func FuzzRegistration(f *testing.F) {
	for _, seed := range []string{
		`{"url":"http://127.0.0.1:3001"}`,
		`{"url":"https://user.example:8443/base","weight":5,"version":"1.2.3","zone":"eu-1","tags":["a","b","a"],"metadata":{"team":"core"},"ttl":"20s","check":{"path":"/ready?x=1","interval":"100ms","timeout":"100ms","rise":1,"fall":100}}`,
		`{"url":"http://h:1","weight":0}`,
		`{"url":"http://h:1","ttl":30}`,
		`{"url":"http://[::1]:80/"}`,
		`{"url":"http://h:1","check":{"interval":"1h0m1s"}}`,
		`{"url":"http://h:1","metadata":{"k":"\u0000"}}`,
		`{"url":"http://h:1"} x`,
		`[]`, `null`, `{}`,
	} {
		f.Add([]byte(seed), "svc", "a")
	}
	f.Fuzz(func(t *testing.T, body []byte, service, id string) {
		var reg Registration
		if p := httpx.DecodeJSONBytes(body, &reg); p != nil {
			if p.Status != 400 {
				t.Fatalf("decoder status %d", p.Status)
			}
			return
		}
		inst, err := reg.Normalize(service, id)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadName) {
				t.Fatalf("error %v is neither ErrInvalid nor ErrBadName", err)
			}
			if p := apiProblem(err); p == nil || p.Status != 400 && p.Status != 422 {
				t.Fatalf("problem %+v for %v", p, err)
			}
			return
		}
		checkBounds(t, inst)
		b, err := json.Marshal(inst)
		if err != nil {
			t.Fatal(err)
		}
		var back Instance
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		b2, _ := json.Marshal(&back)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed the instance:\n%s\n%s", b, b2)
		}
	})
}

func checkBounds(t *testing.T, inst *Instance) {
	t.Helper()
	c := inst.Check
	switch {
	case inst.Weight < MinWeight || inst.Weight > MaxWeight:
		t.Fatalf("weight %d", inst.Weight)
	case inst.TTL < MinTTL || inst.TTL > MaxTTL:
		t.Fatalf("ttl %s", inst.TTL)
	case c.Interval < MinCheckInterval || c.Timeout <= 0 || c.Timeout > c.Interval:
		t.Fatalf("check %+v", c)
	case c.Rise < 1 || c.Fall < 1 || c.Rise > MaxRiseFall || c.Fall > MaxRiseFall:
		t.Fatalf("rise/fall %+v", c)
	case len(inst.Tags) > MaxTags || len(inst.Metadata) > MaxMetadata || len(inst.URL) > MaxURLLen:
		t.Fatalf("sizes %+v", inst)
	case !strings.HasPrefix(inst.URL, "http://") && !strings.HasPrefix(inst.URL, "https://"):
		t.Fatalf("url %q", inst.URL)
	case ValidateService(inst.Service) != nil || ValidateID(inst.ID) != nil:
		t.Fatalf("names %q %q", inst.Service, inst.ID)
	}
	if _, _, ok := splitKey(key(inst.Service, inst.ID)); !ok {
		t.Fatalf("key %q does not split", key(inst.Service, inst.ID))
	}
}
