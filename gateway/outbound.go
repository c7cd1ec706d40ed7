package gateway

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// roundTrip sends one try to an instance.
func (g *Gateway) roundTrip(ctx context.Context, ex *exchange, u *upstream, hdr http.Header, rb *reqBody, rest string) (*http.Response, error) {
	r := ex.r
	out := r.WithContext(ctx)
	out.URL = upstreamURL(u, rest, r.URL.RawQuery)
	out.Host = "" // the instance's host; X-Forwarded-Host keeps the client's
	out.RequestURI = ""
	out.Header = hdr
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Close = false
	out.TransferEncoding = nil
	out.Body, out.ContentLength, out.GetBody = rb.forAttempt()
	u.ep.Begin()
	return ex.c.transport.RoundTrip(out)
}

// upstreamURL joins the instance's base URL and the (escaped) rest of the
// request path, keeping the query as sent.
func upstreamURL(u *upstream, rest, rawQuery string) *url.URL {
	esc := rest
	if u.basePath != "" {
		esc = u.basePath + rest
	}
	out := &url.URL{Scheme: u.base.Scheme, Host: u.base.Host, RawQuery: rawQuery}
	if strings.IndexByte(esc, '%') < 0 {
		out.Path = esc
		return out
	}
	p, err := url.PathUnescape(esc)
	if err != nil {
		out.Path = esc
		return out
	}
	out.Path, out.RawPath = p, esc
	return out
}

// outboundHeader builds the upstream request's header: the client's minus
// hop-by-hop headers, plus forwarding, request id and trace context.
func (g *Gateway) outboundHeader(ex *exchange) http.Header {
	r := ex.r
	in := r.Header
	conn := connectionTokens(in)
	h := make(http.Header, len(in)+6)
	for k, v := range in {
		if hopHeaders[k] || (conn != nil && contains(conn, k)) {
			continue
		}
		h[k] = v
	}
	if up := upgradeType(in); up != "" {
		h[hdrConnection] = upgradeValue
		h[hdrUpgrade] = in[hdrUpgrade][:1]
	}
	if headerHasToken(in[hdrTE], "trailers") {
		h[hdrTE] = trailersValue
	}
	setForwarded(ex, in, h)
	h[hdrRequestID] = ex.reqID
	// With a tracer the gateway's span is the upstream's parent; without
	// one the client's traceparent passes unchanged, or a new trace starts.
	if !injectTrace(ex, h) {
		if tp := in[hdrTraceparent]; len(tp) != 1 || !validTraceparent(tp[0]) {
			h[hdrTraceparent] = []string{newTraceparent()}
			delete(h, hdrTracestate)
		}
	}
	if _, ok := h[hdrUserAgent]; !ok {
		h[hdrUserAgent] = emptyValue // keep Go's default User-Agent out
	}
	return h
}

// setForwarded sets X-Forwarded-For/Proto/Host. Values sent by a trusted
// proxy are kept (the peer appended to X-Forwarded-For); anyone else's are
// replaced, so clients cannot spoof their address.
func setForwarded(ex *exchange, in, h http.Header) {
	r := ex.r
	if ex.trusted {
		if prior := in[hdrXFF]; len(prior) > 0 {
			h[hdrXFF] = []string{strings.Join(prior, ", ") + ", " + ex.peerStr}
		} else {
			h[hdrXFF] = []string{ex.peerStr}
		}
		if len(in[hdrXFProto]) == 0 {
			h[hdrXFProto] = protoValue(r)
		}
		if len(in[hdrXFHost]) == 0 {
			h[hdrXFHost] = []string{r.Host}
		}
		return
	}
	vs := make([]string, 2) // one allocation for both headers
	vs[0], vs[1] = ex.peerStr, r.Host
	h[hdrXFF], h[hdrXFHost] = vs[0:1:1], vs[1:2:2]
	h[hdrXFProto] = protoValue(r)
	delete(h, hdrForwarded)
	delete(h, hdrXRealIP)
}

func protoValue(r *http.Request) []string {
	if r.TLS != nil {
		return httpsValue
	}
	return httpValue
}
