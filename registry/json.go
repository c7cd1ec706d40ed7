package registry

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

// The registry's Go types hold time.Duration; on the wire (the API, the
// engine's bucket) durations are Go duration strings ("30s"), as
// docs/openapi.yaml says. The *JSON types below are those wire shapes:
// each embeds its Go type without methods and replaces the durations.

type checkFields Check

type checkJSON struct {
	checkFields
	Interval httpx.Duration `json:"interval,omitempty"`
	Timeout  httpx.Duration `json:"timeout,omitempty"`
}

func (c Check) wire() checkJSON {
	return checkJSON{checkFields: checkFields(c), Interval: httpx.Duration(c.Interval), Timeout: httpx.Duration(c.Timeout)}
}

func (j checkJSON) check() Check {
	c := Check(j.checkFields)
	c.Interval, c.Timeout = j.Interval.D(), j.Timeout.D()
	return c
}

// MarshalJSON writes the durations as Go duration strings.
func (c Check) MarshalJSON() ([]byte, error) { return json.Marshal(c.wire()) }

// UnmarshalJSON reads the durations as Go duration strings.
func (c *Check) UnmarshalJSON(b []byte) error {
	j := c.wire()
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = j.check()
	return nil
}

type instanceFields Instance

type instanceJSON struct {
	instanceFields
	TTL httpx.Duration `json:"ttl"`
}

// MarshalJSON writes the lease as a Go duration string.
func (in Instance) MarshalJSON() ([]byte, error) {
	return json.Marshal(instanceJSON{instanceFields: instanceFields(in), TTL: httpx.Duration(in.TTL)})
}

// UnmarshalJSON reads what MarshalJSON writes. Unknown fields are ignored:
// instances come from the engine's bucket and from nodes of other versions.
func (in *Instance) UnmarshalJSON(b []byte) error {
	j := instanceJSON{instanceFields: instanceFields(*in), TTL: httpx.Duration(in.TTL)}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*in = Instance(j.instanceFields)
	in.TTL = j.TTL.D()
	return nil
}

type registrationFields Registration

// registrationJSON is a Registration on the wire. It has no methods, so a
// decoder's DisallowUnknownFields reaches into it and its check.
type registrationJSON struct {
	registrationFields
	TTL   httpx.Duration `json:"ttl,omitempty"`
	Check *checkJSON     `json:"check,omitempty"`
}

func (r Registration) wire() registrationJSON {
	j := registrationJSON{registrationFields: registrationFields(r), TTL: httpx.Duration(r.TTL)}
	if r.Check != nil {
		c := r.Check.wire()
		j.Check = &c
	}
	return j
}

func (j registrationJSON) registration() Registration {
	r := Registration(j.registrationFields)
	r.TTL, r.Check = j.TTL.D(), nil
	if j.Check != nil {
		c := j.Check.check()
		r.Check = &c
	}
	return r
}

// MarshalJSON writes the durations as Go duration strings.
func (r Registration) MarshalJSON() ([]byte, error) { return json.Marshal(r.wire()) }

// UnmarshalJSON reads a registration strictly, as the API takes it: an
// unknown field, here or in its check, is an error.
func (r *Registration) UnmarshalJSON(b []byte) error {
	var j registrationJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*r = j.registration()
	return nil
}

// HeartbeatAnswer is the answer of PUT …/heartbeat.
type HeartbeatAnswer struct {
	ExpiresAt time.Time     `json:"expiresAt"`
	TTL       time.Duration `json:"ttl"`
}

type heartbeatJSON struct {
	ExpiresAt time.Time      `json:"expiresAt"`
	TTL       httpx.Duration `json:"ttl"`
}

// MarshalJSON writes the lease as a Go duration string.
func (h HeartbeatAnswer) MarshalJSON() ([]byte, error) {
	return json.Marshal(heartbeatJSON{ExpiresAt: h.ExpiresAt, TTL: httpx.Duration(h.TTL)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *HeartbeatAnswer) UnmarshalJSON(b []byte) error {
	var j heartbeatJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	h.ExpiresAt, h.TTL = j.ExpiresAt, j.TTL.D()
	return nil
}
