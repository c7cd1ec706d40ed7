package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/plexushq/plexus/internal/h1"
	"github.com/plexushq/plexus/internal/httpx"
)

// upgrades tracks the open protocol-switch tunnels (WebSocket), so Stop can
// close them and wait for their goroutines. Reloads leave them alone.
type upgrades struct {
	mu     sync.Mutex
	open   map[*tunnel]struct{}
	closed bool
	wg     sync.WaitGroup
}

type tunnel struct{ client, backend io.Closer }

func (t *tunnel) close() {
	_ = t.client.Close()
	_ = t.backend.Close()
}

func (u *upgrades) add(t *tunnel) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	if u.open == nil {
		u.open = map[*tunnel]struct{}{}
	}
	u.open[t] = struct{}{}
	u.wg.Add(1)
	return true
}

func (u *upgrades) remove(t *tunnel) {
	u.mu.Lock()
	delete(u.open, t)
	u.mu.Unlock()
	u.wg.Done()
}

func (u *upgrades) closeAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	for t := range u.open {
		t.close()
	}
}

func (u *upgrades) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { u.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// upgrade completes a protocol switch (101): it takes over the client's
// connection, sends the upstream's 101 head and copies bytes both ways
// until either side closes, the server shuts down or the gateway stops.
func (g *Gateway) upgrade(ex *exchange, resp *h1.Response) bool {
	want := upgradeType(ex.r.Header)
	got, _ := resp.Get(hdrUpgrade)
	if want == "" || !strings.EqualFold(want, got) || !headerHasToken(fieldValues(resp.Header, hdrConnection), "upgrade") {
		_ = resp.Body().Close()
		g.problem(ex, httpx.NewProblem(http.StatusBadGateway, "bad-upgrade",
			"the upstream switched to a protocol the client did not ask for"))
		return false
	}
	backend, backendR, err := resp.Hijack()
	if err != nil {
		_ = resp.Body().Close()
		g.problem(ex, g.upstreamProblem(ex, ex.fwd.ctx, err, ex.fwd.timeout))
		return false
	}
	conn, brw, err := http.NewResponseController(ex.w).Hijack()
	if err != nil {
		_ = backend.Close()
		g.problem(ex, httpx.NewProblem(http.StatusBadGateway, "upgrade-unsupported",
			"protocol upgrades need HTTP/1.1 between the client and the gateway"))
		return false
	}
	_ = conn.SetDeadline(time.Time{}) // a tunnel lives as long as its ends want
	h := ex.w.Header()
	copyResponseHeader(ex, h, resp.Header)
	h[hdrConnection] = upgradeValue
	h[hdrUpgrade] = []string{got}
	ex.status = http.StatusSwitchingProtocols
	_, err = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	if err == nil {
		err = h.Write(brw)
	}
	if err == nil {
		_, err = brw.WriteString("\r\n")
	}
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		_ = conn.Close()
		_ = backend.Close()
		return false
	}
	t := &tunnel{client: conn, backend: backend}
	if !g.upgrades.add(t) {
		t.close()
		return false
	}
	defer g.upgrades.remove(t)
	ex.bytes = g.pipe(ex.r.Context(), t, conn, brw, backend, backendR)
	return false
}

// fieldValues lists the values of the fields named key.
func fieldValues(fs []h1.Field, key string) []string {
	var vs []string
	for _, f := range fs {
		if f.Key == key {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// pipe copies both ways and returns the bytes sent to the client.
func (g *Gateway) pipe(ctx context.Context, t *tunnel, conn net.Conn, brw io.Reader, backend io.Writer, backendR io.Reader) int64 {
	var toClient int64
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(backend, brw) // brw holds bytes the client sent early
		done <- struct{}{}
	}()
	go func() {
		toClient, _ = io.Copy(conn, backendR) // backendR holds bytes the upstream sent early
		done <- struct{}{}
	}()
	ended := 0
	select {
	case <-done:
		ended = 1
	case <-httpx.Stopping(ctx):
	case <-g.stop:
	}
	t.close() // unblocks the other copy
	for ; ended < 2; ended++ {
		<-done
	}
	return toClient
}
