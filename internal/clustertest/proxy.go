package clustertest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// proxy forwards TCP connections from a loopback listener to a target
// address that can change (a server restarted on a new port). Cut severs
// every connection at once, with a reset, and refuses new ones until Heal:
// to the peers on the other side it looks like a machine that vanished or
// a network that broke, not like a server that said goodbye.
type proxy struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	to   string // target address; "" refuses connections
	cut  bool
	conn map[net.Conn]struct{}
	// rewrite replaces byte strings (each with one of the same length, so
	// the protocol's framing holds) in what the target sends back.
	rewrite []Rewrite
}

// Rewrite replaces Old with New (of the same length) in a server's answers.
type Rewrite struct{ Old, New string }

func newProxy() (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, conn: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address peers dial.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

// target sets where new connections go.
func (p *proxy) target(addr string) {
	p.mu.Lock()
	p.to = addr
	p.mu.Unlock()
}

// Cut closes every connection with a reset and refuses new ones.
func (p *proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := make([]net.Conn, 0, len(p.conn))
	for c := range p.conn {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// Heal accepts connections again.
func (p *proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops the listener and every connection and waits for the
// proxy's goroutines.
func (p *proxy) Close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track adds c to the live connections unless the proxy is cut.
func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	for _, c := range cs {
		p.conn[c] = struct{}{}
	}
	return true
}

func (p *proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conn, c)
	}
}

func (p *proxy) serve(in net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	to, cut := p.to, p.cut
	p.mu.Unlock()
	if cut || to == "" {
		_ = in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", to, 2*time.Second)
	if err != nil {
		_ = in.Close()
		return
	}
	if !p.track(in, out) {
		_ = in.Close()
		_ = out.Close()
		return
	}
	defer p.untrack(in, out)
	done := make(chan struct{}, 2)
	pipe := func(dst io.Writer, src io.Reader, cs ...net.Conn) {
		_, _ = io.Copy(dst, src)
		for _, c := range cs {
			_ = c.Close()
		}
		done <- struct{}{}
	}
	go pipe(out, in, out, in)
	if len(p.rewrite) > 0 {
		go pipe(&rewriter{w: in, rules: p.rewrite}, out, in, out)
	} else {
		go pipe(in, out, in, out)
	}
	<-done
	<-done
}

// rewriter applies same-length replacements to a byte stream, holding back
// the last few bytes of each write so that a match split across writes is
// still found. It flushes what it holds only when the stream ends, which is
// fine for the request-response traffic it is used on: every answer ends
// with CRLF, and the held bytes are fewer than the longest pattern.
type rewriter struct {
	w     io.Writer
	rules []Rewrite
	buf   []byte
}

func (r *rewriter) Write(b []byte) (int, error) {
	r.buf = append(r.buf, b...)
	for _, rule := range r.rules {
		r.buf = bytes.ReplaceAll(r.buf, []byte(rule.Old), []byte(rule.New))
	}
	// Hold back a possible prefix of a pattern at the end.
	hold := 0
	for _, rule := range r.rules {
		for k := min(len(rule.Old)-1, len(r.buf)); k > hold; k-- {
			if bytes.HasSuffix(r.buf, []byte(rule.Old[:k])) {
				hold = k
				break
			}
		}
	}
	out := r.buf[:len(r.buf)-hold]
	if _, err := r.w.Write(out); err != nil {
		return 0, err
	}
	r.buf = append(r.buf[:0], r.buf[len(r.buf)-hold:]...)
	return len(b), nil
}

// Proxy is a TCP proxy a test puts in front of any server (a Plexus
// node's listener) to cut its connections as a crash would.
type Proxy struct{ p *proxy }

// NewProxy forwards a new loopback port to target; it is closed when the
// test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := newProxy()
	if err != nil {
		t.Fatal(err)
	}
	p.target(target)
	t.Cleanup(p.Close)
	return &Proxy{p: p}
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string { return p.p.Addr() }

// Cut resets every connection and refuses new ones.
func (p *Proxy) Cut() { p.p.Cut() }
