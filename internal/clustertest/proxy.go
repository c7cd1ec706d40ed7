package clustertest

import (
	"errors"
	"io"
	"net"
	"sync"
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
}

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
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}
