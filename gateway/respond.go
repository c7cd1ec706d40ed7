package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plexushq/plexus/internal/h1"
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// respond streams the upstream's answer to the client: status, headers
// without hop-by-hop ones, body as it arrives (flushed at once for event
// streams and bodies of unknown length), and trailers. It reports whether
// the client connection must be aborted because the body broke midway.
func (g *Gateway) respond(ex *exchange, ctx context.Context, timer *time.Timer, resp *h1.Response) bool {
	if resp.Status == http.StatusSwitchingProtocols {
		timer.Stop() // a tunnel lives as long as its ends want
		return g.upgrade(ex, resp)
	}
	body := resp.Body()
	defer body.Close()
	h := ex.w.Header()
	ct := copyResponseHeader(ex, h, resp.Header)
	stream := isEventStream(ct)
	if stream {
		timer.Stop() // an event stream is bounded by its ends, not the timeout
	}
	flush := stream || resp.ContentLength < 0
	ex.beforeRelay()
	ex.w.WriteHeader(resp.Status)
	ex.status = resp.Status
	if flush {
		_ = ex.rc.Flush()
	}
	n, rerr, werr := copyBody(ex, body, flush)
	ex.bytes = n
	for _, f := range resp.Trailer {
		h[http.TrailerPrefix+f.Key] = append(h[http.TrailerPrefix+f.Key], f.Value)
	}
	if rerr != nil && werr == nil {
		kind := "body"
		if errors.Is(context.Cause(ctx), errUpstreamTimeout) {
			kind = "timeout"
		}
		g.metrics.upstreamErrors.WithLabelValues(ex.svcLabel, kind).Inc()
		g.log.Warn("gateway: upstream answer broke midway; aborting the client connection",
			"service", ex.service, "instance", ex.upstream, "request_id", ex.reqID[0], "bytes", n, "err", rerr)
		return true
	}
	return false
}

// copyResponseHeader copies the upstream's fields, leaving out hop-by-hop
// ones and those the gateway owns (request id and rate limit headers it
// set; every Access-Control-* header when CORS is configured), and merging
// Vary when CORS added Origin. It returns the Content-Type. The values
// share one allocation; a field the upstream repeats is appended.
func copyResponseHeader(ex *exchange, h http.Header, from []h1.Field) (contentType string) {
	conn := connectionFields(from)
	corsOn := ex.c.cors != nil
	vals := make([]string, len(from))
	for i, f := range from {
		k := f.Key
		if hopHeaders[k] || (conn != nil && contains(conn, k)) || (corsOn && strings.HasPrefix(k, "Access-Control-")) {
			continue
		}
		if k == hdrContentType && contentType == "" {
			contentType = f.Value
		}
		if seenBefore(from[:i], k) { // the upstream repeats the field
			if !gatewayOwned(k) {
				h[k] = append(h[k], f.Value)
			}
			continue
		}
		vals[i] = f.Value
		v := vals[i : i+1 : i+1]
		if _, set := h[k]; set {
			switch {
			case k == hdrVary && ex.corsVary:
				h[k] = append(v, hdrOrigin)
				continue
			case gatewayOwned(k):
				continue
			}
		}
		h[k] = v
	}
	return contentType
}

// seenBefore reports that a field named k came earlier (answers carry a
// handful of fields: a scan is cheaper than a set).
func seenBefore(fs []h1.Field, k string) bool {
	for _, f := range fs {
		if f.Key == k {
			return true
		}
	}
	return false
}

func gatewayOwned(k string) bool {
	switch k {
	case hdrRequestID, hdrRateLimit, hdrRateRemaining, hdrRateReset:
		return true
	}
	return false
}

func isEventStream(contentType string) bool {
	const es = "text/event-stream"
	v := strings.TrimLeft(contentType, " \t")
	return len(v) >= len(es) && strings.EqualFold(v[:len(es)], es) &&
		(len(v) == len(es) || v[len(es)] == ';' || v[len(es)] == ' ' || v[len(es)] == '\t')
}

// copyBody copies src to the client, flushing after each write when
// asked, and giving the client the send idle timeout for every write. It
// returns the bytes written and the read and write errors apart.
func copyBody(ex *exchange, src io.Reader, flush bool) (n int64, rerr, werr error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	w := ex.w
	var fl http.Flusher
	if flush {
		fl, _ = w.(http.Flusher)
	}
	for {
		nr, err := src.Read(buf)
		if nr > 0 {
			ex.extendWrite()
			nw, ew := w.Write(buf[:nr])
			n += int64(nw)
			if ew != nil {
				return n, nil, ew
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}

// discard drops a response that is not passed on (a retried 503), reading
// a little of it so the connection can be reused.
func discard(resp *h1.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body(), 16<<10)
	_ = resp.Body().Close()
}

// rateLimit applies a limiter; false when the request was refused (429
// already written). RateLimit headers go on every answer.
func (g *Gateway) rateLimit(ex *exchange, l *limiter) bool {
	res := l.l.Allow(l.key(ex.r, ex.clientIP))
	h := ex.w.Header()
	vs := make([]string, 3) // one allocation for the three headers
	vs[0], vs[1], vs[2] = l.limit, smallItoa(max(res.Remaining, 0)), smallItoa(ceilSeconds(res.Reset))
	h[hdrRateLimit], h[hdrRateRemaining], h[hdrRateReset] = vs[0:1:1], vs[1:2:2], vs[2:3:3]
	if res.Allowed {
		return true
	}
	g.metrics.rateLimited.WithLabelValues(ex.svcLabel, ex.route).Inc()
	g.problem(ex, errRateLimited(res.RetryAfter))
	return false
}

var smallInts = func() (t [1024]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

// smallItoa formats i without allocating when it is below 1024.
func smallItoa(i int) string {
	if i >= 0 && i < len(smallInts) {
		return smallInts[i]
	}
	return strconv.Itoa(i)
}
