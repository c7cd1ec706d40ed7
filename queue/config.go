package queue

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/httpx"
	apiname "github.com/plexushq/plexus/internal/names"
)

// Overflow policies for a full queue.
const (
	// OverflowDropOldest makes room by dead-lettering the oldest ready
	// message with reason "overflow" (the seed's default, minus its silent
	// loss; docs/queue.md).
	OverflowDropOldest = "drop-oldest"
	// OverflowReject refuses the publish with ErrQueueFull (HTTP 507).
	OverflowReject = "reject"
)

// Retry backoff kinds.
const (
	// BackoffFixed waits RetryDelay before every retry.
	BackoffFixed = "fixed"
	// BackoffExponential waits RetryDelay·2^(attempt-1) with ±20% jitter,
	// capped at maxBackoff.
	BackoffExponential = "exponential"
)

// Dead-letter reasons.
const (
	ReasonMaxAttempts = "max_attempts_reached"
	ReasonExpired     = "expired"
	ReasonOverflow    = "overflow"
)

// Priorities run from MinPriority to MaxPriority; higher is delivered first.
const (
	MinPriority = 0
	MaxPriority = 9
	levels      = MaxPriority + 1
)

const maxBackoff = 15 * time.Minute

// Defaults of a queue's options (Config fields left zero or nil).
const (
	DefaultMaxSize           = 1000
	DefaultRetryAttempts     = 3
	DefaultRetryDelay        = 5 * time.Second
	DefaultTTL               = time.Hour
	DefaultVisibilityTimeout = 30 * time.Second
	// DeadLetterMaxSize bounds a dead-letter queue Plexus creates.
	DeadLetterMaxSize = 100000
)

// Bounds of a visibility timeout (a queue's or one receive's).
const (
	minVisibility = 100 * time.Millisecond
	maxVisibility = 12 * time.Hour
)

// DefaultMaxQueues caps the number of queues (dead-letter queues included)
// unless Options.MaxQueues says otherwise.
const DefaultMaxQueues = 1000

// ValidName reports whether s is a valid queue name
// (^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$, as docs/openapi.yaml says).
func ValidName(s string) bool { return apiname.Valid(s) }

// Config is a queue's options. The zero value of each field means its
// default; Normalize fills them in. In JSON and YAML the durations are Go
// duration strings ("5s"), as docs/openapi.yaml says.
type Config struct {
	// MaxSize bounds the messages held (ready, in flight and delayed).
	// Default DefaultMaxSize.
	MaxSize int `json:"maxSize,omitempty" yaml:"maxSize"`
	// Overflow is OverflowDropOldest (default) or OverflowReject.
	Overflow string `json:"overflow,omitempty" yaml:"overflow"`
	// RetryAttempts is how many deliveries a message gets before it is
	// dead-lettered with max_attempts_reached. Default DefaultRetryAttempts.
	RetryAttempts int `json:"retryAttempts,omitempty" yaml:"retryAttempts"`
	// RetryDelay is the wait before a failed message is delivered again, 0
	// (at once) to 24h. Nil: DefaultRetryDelay.
	RetryDelay *time.Duration `json:"retryDelay,omitempty" yaml:"retryDelay"`
	// RetryBackoff is BackoffFixed (default) or BackoffExponential.
	RetryBackoff string `json:"retryBackoff,omitempty" yaml:"retryBackoff"`
	// TTL is the age after which an undelivered message is dead-lettered
	// with reason expired. Default DefaultTTL; negative disables it
	// (dead-letter queues).
	TTL time.Duration `json:"ttl,omitempty" yaml:"ttl"`
	// DeadLetterQueue receives the queue's dead letters. Default "<name>.dlq".
	DeadLetterQueue string `json:"deadLetterQueue,omitempty" yaml:"deadLetterQueue"`
	// VisibilityTimeout is how long a received message stays invisible to
	// other consumers before it is redelivered. Default
	// DefaultVisibilityTimeout.
	VisibilityTimeout time.Duration `json:"visibilityTimeout,omitempty" yaml:"visibilityTimeout"`
	// DeadLetterOf names the queue whose dead letters this queue holds;
	// set by Plexus on dead-letter queues it creates, which have no
	// dead-letter queue of their own and never expire.
	DeadLetterOf string `json:"deadLetterOf,omitempty" yaml:"-"`
}

// Normalize fills defaults for queue name.
func (c *Config) Normalize(name string) {
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.Overflow == "" {
		c.Overflow = OverflowDropOldest
	}
	if c.RetryAttempts == 0 {
		c.RetryAttempts = DefaultRetryAttempts
	}
	if c.RetryDelay == nil {
		d := DefaultRetryDelay
		c.RetryDelay = &d
	}
	if c.RetryBackoff == "" {
		c.RetryBackoff = BackoffFixed
	}
	if c.TTL == 0 && c.DeadLetterOf == "" {
		c.TTL = DefaultTTL
	}
	if c.DeadLetterQueue == "" && c.DeadLetterOf == "" {
		c.DeadLetterQueue = name + ".dlq"
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = DefaultVisibilityTimeout
	}
}

// Validate reports invalid values as a ConfigError naming the field.
func (c *Config) Validate(name string) error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &ConfigError{Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	if c.MaxSize < 1 || c.MaxSize > 10_000_000 {
		bad("maxSize", "%d: want 1 to 10000000", c.MaxSize)
	}
	if c.Overflow != OverflowDropOldest && c.Overflow != OverflowReject {
		bad("overflow", "%q: want %q or %q", c.Overflow, OverflowDropOldest, OverflowReject)
	}
	if c.RetryAttempts < 1 || c.RetryAttempts > 1000 {
		bad("retryAttempts", "%d: want 1 to 1000", c.RetryAttempts)
	}
	if d := c.retryDelay(); d < 0 || d > 24*time.Hour {
		bad("retryDelay", "%s: want 0 to 24h", d)
	}
	if c.RetryBackoff != BackoffFixed && c.RetryBackoff != BackoffExponential {
		bad("retryBackoff", "%q: want %q or %q", c.RetryBackoff, BackoffFixed, BackoffExponential)
	}
	if c.TTL > 0 && c.TTL < time.Second || c.TTL > 365*24*time.Hour {
		bad("ttl", "%s: want 1s to 8760h (or negative for none)", c.TTL)
	}
	if c.DeadLetterOf == "" {
		if !ValidName(c.DeadLetterQueue) {
			bad("deadLetterQueue", "%q is not a valid queue name", c.DeadLetterQueue)
		} else if c.DeadLetterQueue == name {
			bad("deadLetterQueue", "a queue cannot be its own dead-letter queue")
		}
	}
	if v := c.VisibilityTimeout; v < minVisibility || v > maxVisibility {
		bad("visibilityTimeout", "%s: want %s to %s", v, minVisibility, maxVisibility)
	}
	return errors.Join(errs...)
}

// retryDelay is RetryDelay, DefaultRetryDelay when nil.
func (c *Config) retryDelay() time.Duration {
	if c.RetryDelay == nil {
		return DefaultRetryDelay
	}
	return *c.RetryDelay
}

// configJSON is Config as JSON: durations as Go duration strings.
type configJSON struct {
	configFields
	RetryDelay        *httpx.Duration `json:"retryDelay,omitempty"`
	TTL               httpx.Duration  `json:"ttl,omitempty"`
	VisibilityTimeout httpx.Duration  `json:"visibilityTimeout,omitempty"`
}

// configFields is Config without its methods.
type configFields Config

// MarshalJSON writes the durations as Go duration strings ("5s").
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.wire()) }

// UnmarshalJSON reads the durations as Go duration strings ("5s").
func (c *Config) UnmarshalJSON(b []byte) error {
	j := c.wire()
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = j.config()
	return nil
}

func (c Config) wire() configJSON {
	j := configJSON{configFields: configFields(c), TTL: httpx.Duration(c.TTL),
		VisibilityTimeout: httpx.Duration(c.VisibilityTimeout)}
	if c.RetryDelay != nil {
		d := httpx.Duration(*c.RetryDelay)
		j.RetryDelay = &d
	}
	return j
}

func (j configJSON) config() Config {
	c := Config(j.configFields)
	c.TTL, c.VisibilityTimeout, c.RetryDelay = j.TTL.D(), j.VisibilityTimeout.D(), nil
	if j.RetryDelay != nil {
		d := max(j.RetryDelay.D(), 0) // "-1ns": how an earlier version stored "at once"
		c.RetryDelay = &d
	}
	return c
}

// backoff is the delay before the retry that follows failed attempt n (1-based).
func (c *Config) backoff(n int, jitter func() float64) time.Duration {
	d := c.retryDelay()
	if c.RetryBackoff != BackoffExponential || d <= 0 {
		return d
	}
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	// ±20% jitter so that a burst of failures does not retry in lockstep.
	return time.Duration(float64(d) * (0.8 + 0.4*jitter()))
}

// token is the queue's name as one stream-name and subject token: the name
// itself when it has only letters, digits and '-', otherwise a sanitized
// form with a hash suffix so that distinct names never collide.
func token(name string) string {
	plain := true
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if !(ch == '-' || ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:8]))
	return strings.NewReplacer(".", "_").Replace(name) + "_" + h
}

// names are the JetStream names of one queue.
type names struct {
	queue, stream, tok string
	ready              [levels]string // subject per priority
	readyAll           string         // wildcard over ready subjects
	delayedAll         string         // wildcard over schedule subjects
}

func namesFor(queue string) *names {
	t := token(queue)
	n := &names{queue: queue, tok: t, stream: engine.QueueStreamPrefix + t}
	base := engine.SubjectPrefix + "q." + t
	for p := range levels {
		n.ready[p] = fmt.Sprintf("%s.p.%d", base, p)
	}
	n.readyAll = base + ".p.*"
	n.delayedAll = base + ".d.*"
	return n
}

func (n *names) delayed(id string) string {
	return engine.SubjectPrefix + "q." + n.tok + ".d." + id
}

func consumerName(p int) string { return fmt.Sprintf("p%d", p) }
