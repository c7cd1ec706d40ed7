package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What Plexus needs of a server. Older or smaller servers are refused at
// start with ErrIncompatible: against nats-server 2.11 delayed queue
// messages never arrive and multi-event appends are not atomic, because
// the server ignores the stream settings it does not know.
const (
	// MinServerVersion: message schedules (delayed queue messages) and
	// atomic batch publish (multi-event appends) came with 2.12, per-message
	// TTL (registry leases) with 2.11.
	MinServerVersion = "2.12.0"
	// MinAPILevel is the JetStream API level of 2.12.
	MinAPILevel = 2
	// MinMaxPayload is the smallest max_payload accepted: a registration
	// is up to 64 KiB.
	MinMaxPayload = 64 << 10
)

// ErrIncompatible means the server lacks something Plexus needs: it is
// too old, JetStream is off, its max_payload is too small, or it dropped a
// stream setting it did not understand.
var ErrIncompatible = errors.New("engine: server not compatible")

// checkServer checks the connected server's version and max_payload.
func checkServer(nc *nats.Conn) error {
	v := nc.ConnectedServerVersion()
	if !versionAtLeast(v, MinServerVersion) {
		return fmt.Errorf("%w: nats-server %s at %s is too old; Plexus needs %s or newer (message schedules for delayed messages, atomic batch publish for event appends, per-message TTL for leases)",
			ErrIncompatible, v, nc.ConnectedUrlRedacted(), MinServerVersion)
	}
	if mp := nc.MaxPayload(); mp < MinMaxPayload {
		return fmt.Errorf("%w: the server's max_payload is %d bytes; Plexus needs at least %d (set max_payload: 1MB or more)",
			ErrIncompatible, mp, MinMaxPayload)
	}
	return nil
}

// checkAPILevel refuses a JetStream whose API level is below MinAPILevel
// (in a cluster, the level the answering server reports).
func checkAPILevel(ai *jetstream.AccountInfo) error {
	if ai.API.Level < MinAPILevel {
		return fmt.Errorf("%w: JetStream API level %d; Plexus needs %d (nats-server %s or newer on every server of the cluster)",
			ErrIncompatible, ai.API.Level, MinAPILevel, MinServerVersion)
	}
	return nil
}

// versionAtLeast compares dotted versions ("2.12.0", "v2.15.2-beta.1"); an
// unreadable version is not at least anything.
func versionAtLeast(v, min string) bool {
	have, ok1 := parseVersion(v)
	want, ok2 := parseVersion(min)
	if !ok1 || !ok2 {
		return false
	}
	for i := range have {
		if have[i] != want[i] {
			return have[i] > want[i]
		}
	}
	return true
}

func parseVersion(v string) ([3]int, bool) {
	var out [3]int
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// verifyFeatures checks that the server kept the stream settings Plexus
// asked for: a server that does not know a setting drops it silently and
// the feature then fails quietly (delays never fire, batches are not
// atomic).
func verifyFeatures(asked jetstream.StreamConfig, got *jetstream.StreamInfo) error {
	if got == nil {
		return nil
	}
	have := got.Config
	var missing []string
	for _, f := range []struct {
		name        string
		asked, have bool
	}{
		{"message schedules (allow_msg_schedules)", asked.AllowMsgSchedules, have.AllowMsgSchedules},
		{"atomic batch publish (allow_atomic)", asked.AllowAtomicPublish, have.AllowAtomicPublish},
		{"per-message TTL (allow_msg_ttl)", asked.AllowMsgTTL, have.AllowMsgTTL},
		{"subject delete markers (subject_delete_marker_ttl)", asked.SubjectDeleteMarkerTTL > 0, have.SubjectDeleteMarkerTTL > 0},
	} {
		if f.asked && !f.have {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: stream %s: the server dropped %s; Plexus needs nats-server %s or newer on every server",
			ErrIncompatible, asked.Name, strings.Join(missing, ", "), MinServerVersion)
	}
	return nil
}

// MaxPayload is the largest message the connected server accepts, headers
// included (its max_payload).
func (e *Engine) MaxPayload() int64 { return e.nc.MaxPayload() }

// CheckSize reports a message of size bytes (payload and headers) that the
// server would refuse, as a *TooLargeError naming the limit.
func (e *Engine) CheckSize(size int) error { return CheckSize(e.nc, size) }

// CheckSize is Engine.CheckSize for any connection.
func CheckSize(nc *nats.Conn, size int) error {
	if limit := nc.MaxPayload(); int64(size) > limit {
		return &TooLargeError{Size: int64(size), Limit: limit}
	}
	return nil
}

// CheckMsg is CheckSize for a message about to be published: its payload
// and encoded headers count, as the server counts them.
func CheckMsg(nc *nats.Conn, m *nats.Msg) error {
	return CheckSize(nc, m.Size()-len(m.Subject)-len(m.Reply))
}

// ErrTooLarge means a message is larger than the engine accepts; nothing
// was stored. The *TooLargeError in the chain names the limit.
var ErrTooLarge = errors.New("message too large")

// TooLargeError is a message over the server's max_payload.
type TooLargeError struct {
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("a message of %d bytes (payload and headers) is larger than the engine's max_payload of %d bytes",
		e.Size, e.Limit)
}

// Is makes every TooLargeError match ErrTooLarge.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// accountInfo checks JetStream and its API level at connect time. A
// cluster that is still forming drops requests without an answer, so it
// asks again every couple of seconds until ctx ends.
func accountInfo(ctx context.Context, js jetstream.JetStream) error {
	var ai *jetstream.AccountInfo
	var err error
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ai, err = js.AccountInfo(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(Classify(err), ErrUnavailable) ||
			errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("%w: JetStream is not enabled for this account on the server (enable jetstream in its configuration)", ErrIncompatible)
		}
		return fmt.Errorf("engine: jetstream not available: %w", err)
	}
	return checkAPILevel(ai)
}
