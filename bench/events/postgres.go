package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/plexushq/plexus/bench/internal/benchutil"
)

// pgServer is a PostgreSQL server the benchmark started in its temp dir.
type pgServer struct{ url string }

// startPostgres runs initdb and postgres (as the postgres user when we are
// root) on a loopback port with its data in the temp dir.
func startPostgres(ctx context.Context, ps *benchutil.Procs) (*pgServer, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		return nil, errors.New("postgres binary not found under /usr/lib/postgresql")
	}
	bindir := filepath.Dir(bins[len(bins)-1])
	dir := ps.Path("postgres")
	if err := os.MkdirAll(filepath.Join(dir, "sock"), 0o755); err != nil {
		return nil, err
	}
	var prefix []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, filepath.Join(dir, "sock")} {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
		prefix = []string{"runuser", "-u", "postgres", "--"}
	}
	data := filepath.Join(dir, "data")
	initdb := append(append([]string{}, prefix...), filepath.Join(bindir, "initdb"), "-D", data,
		"-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
	if out, err := exec.CommandContext(ctx, initdb[0], initdb[1:]...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	port, err := benchutil.FreePort()
	if err != nil {
		return nil, err
	}
	argv := append(append([]string{}, prefix...), filepath.Join(bindir, "postgres"), "-D", data,
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", filepath.Join(dir, "sock"),
		"-c", "shared_buffers=512MB", "-c", "max_connections=40", "-c", "max_wal_size=4GB")
	pr, err := ps.Start("postgres", "", nil, argv...)
	if err != nil {
		return nil, err
	}
	if err := benchutil.WaitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", port), pr, 30*time.Second); err != nil {
		return nil, err
	}
	s := &pgServer{url: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	if err := s.createSchema(ctx, pr); err != nil {
		return nil, err
	}
	return s, nil
}

// createSchema connects (retrying while the server finishes starting) and
// creates the events table and the checkpoints of the catch-up reader.
func (s *pgServer) createSchema(ctx context.Context, pr *benchutil.Proc) error {
	var conn *pgx.Conn
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err = pgx.Connect(ctx, s.url)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: %w: %s", err, pr.Tail(2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE events (
  position   bigserial PRIMARY KEY,
  stream     text NOT NULL,
  version    bigint NOT NULL,
  id         uuid NOT NULL DEFAULT gen_random_uuid(),
  type       text NOT NULL,
  data       jsonb NOT NULL,
  metadata   jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (stream, version)
);
CREATE TABLE checkpoints (grp text PRIMARY KEY, position bigint NOT NULL);`)
	if err != nil {
		return fmt.Errorf("postgres schema: %w", err)
	}
	return nil
}

// pgStore is the append-only table with a unique (stream, version) index,
// one connection per writer; syncCommit false sets synchronous_commit=off.
type pgStore struct {
	srv        *pgServer
	syncCommit bool
	mu         sync.Mutex
	idle       []*pgx.Conn
}

func (p *pgStore) Name() string {
	if p.syncCommit {
		return "PostgreSQL"
	}
	return "PostgreSQL async commit"
}

func (p *pgStore) conn(ctx context.Context) (*pgx.Conn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	cfg, err := pgx.ParseConfig(p.srv.url)
	if err != nil {
		return nil, err
	}
	if !p.syncCommit {
		cfg.RuntimeParams["synchronous_commit"] = "off"
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func (p *pgStore) release(c *pgx.Conn) {
	p.mu.Lock()
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// appendSQL inserts the events only when the stream's version is the
// expected one; the unique index settles races between writers.
const appendSQL = `INSERT INTO events (stream, version, type, data)
SELECT $1, $2::bigint + t.i, 'UserCreated', t.d
FROM unnest($3::jsonb[]) WITH ORDINALITY AS t(d, i)
WHERE (SELECT coalesce(max(version), 0) FROM events WHERE stream = $1) = $2`

func (p *pgStore) Append(ctx context.Context, stream string, expected int64, data [][]byte) error {
	c, err := p.conn(ctx)
	if err != nil {
		return err
	}
	defer p.release(c)
	docs := make([]string, len(data))
	for i, d := range data {
		docs[i] = string(d)
	}
	tag, err := c.Exec(ctx, appendSQL, stream, expected, docs)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return fmt.Errorf("conflict: %w", err)
		}
		return err
	}
	if tag.RowsAffected() != int64(len(data)) {
		return fmt.Errorf("conflict: stream %s is not at version %d", stream, expected)
	}
	return nil
}

type pgEvent struct {
	Position int64
	Stream   string
	Version  int64
	ID       [16]byte
	Type     string
	Data     json.RawMessage
	Metadata []byte
	Time     time.Time
}

// readPage reads up to 1000 events after position, decoding each.
func readPage(ctx context.Context, c *pgx.Conn, after int64) (n int, last int64, err error) {
	rows, err := c.Query(ctx, `SELECT position, stream, version, id, type, data, metadata, created_at
FROM events WHERE position > $1 ORDER BY position LIMIT 1000`, after)
	if err != nil {
		return 0, after, err
	}
	defer rows.Close()
	last = after
	for rows.Next() {
		var e pgEvent
		if err := rows.Scan(&e.Position, &e.Stream, &e.Version, &e.ID, &e.Type, &e.Data, &e.Metadata, &e.Time); err != nil {
			return n, last, err
		}
		last = e.Position
		n++
	}
	return n, last, rows.Err()
}

func (p *pgStore) ReadAll(ctx context.Context) (int, error) {
	if !p.syncCommit {
		return 0, errSkip
	}
	c, err := p.conn(ctx)
	if err != nil {
		return 0, err
	}
	defer p.release(c)
	total, after := 0, int64(0)
	for {
		n, last, err := readPage(ctx, c, after)
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		total, after = total+n, last
	}
}

// CatchUp pages through the table as a polling subscriber would, writing
// its checkpoint after every page.
func (p *pgStore) CatchUp(ctx context.Context, group string, want int) error {
	if !p.syncCommit {
		return errSkip
	}
	c, err := p.conn(ctx)
	if err != nil {
		return err
	}
	defer p.release(c)
	total, after := 0, int64(0)
	for total < want {
		n, last, err := readPage(ctx, c, after)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("caught up at %d events, want %d", total, want)
		}
		total, after = total+n, last
		if _, err := c.Exec(ctx, `INSERT INTO checkpoints (grp, position) VALUES ($1, $2)
ON CONFLICT (grp) DO UPDATE SET position = excluded.position`, group, after); err != nil {
			return err
		}
	}
	return nil
}

// pgCounter counts the table's events (the synchronous variant owns it).
type pgCounter struct{ *pgStore }

// Count is the number of events in the table.
func (p pgCounter) Count(ctx context.Context) (int, error) {
	c, err := p.conn(ctx)
	if err != nil {
		return 0, err
	}
	defer p.release(c)
	var n int
	err = c.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n)
	return n, err
}

func (p *pgStore) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.Close(context.Background())
	}
	p.idle = nil
}

var _ store = (*pgStore)(nil)
