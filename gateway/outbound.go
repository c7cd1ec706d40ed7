package gateway

import (
	"context"
	"net/http"
	"strings"

	"github.com/plexushq/plexus/internal/h1"
	"github.com/plexushq/plexus/retry"
)

// roundTrip sends one try to an instance and reads the head of its answer
// into f.resp.
func (g *Gateway) roundTrip(ctx context.Context, ex *exchange, u *upstream, f *forwarding) error {
	r := ex.r
	body, n := f.rb.forAttempt()
	f.req = h1.Request{Method: r.Method, Target: upstreamTarget(u, f.rest, r.URL.RawQuery), Host: u.base.Host,
		Header: f.fields, Body: body, ContentLength: n, Retryable: retry.Idempotent(r.Method) && f.rb.replayable()}
	if len(r.Trailer) > 0 && n < 0 {
		f.req.Trailer = func() []h1.Field { return trailerFields(r.Trailer) }
	}
	u.ep.Begin()
	return ex.c.transport.Do(ctx, u.addr, &f.req, &f.resp)
}

// upstreamTarget joins the instance's base path and the (escaped) rest of
// the request path, keeping the query as sent.
func upstreamTarget(u *upstream, rest, rawQuery string) string {
	switch {
	case rawQuery != "":
		return u.basePath + rest + "?" + rawQuery
	case u.basePath != "":
		return u.basePath + rest
	}
	return rest
}

// trailerFields are the client's request trailers, forwarded after a
// chunked body.
func trailerFields(t http.Header) []h1.Field {
	var fs []h1.Field
	for k, vs := range t {
		for _, v := range vs {
			fs = append(fs, h1.Field{Key: k, Value: v})
		}
	}
	return fs
}

// outboundSkip are client fields the gateway never forwards as they are:
// the body's framing and Host are written by the upstream client, and
// Expect is the gateway's to answer (the client's 100 Continue comes when
// the gateway first reads the body).
var outboundSkip = map[string]bool{"Content-Length": true, "Host": true, "Expect": true}

// outboundFields builds the upstream request's header into f.fields: the
// client's fields minus hop-by-hop ones, plus forwarding, request id and
// trace context. No map is built: the fields refer to the client's values.
func (g *Gateway) outboundFields(ex *exchange, f *forwarding) {
	r := ex.r
	in := r.Header
	conn := connectionTokens(in)
	fs := f.fields[:0]
	for k, vs := range in {
		if hopHeaders[k] || outboundSkip[k] || gatewaySets(ex, k) || (conn != nil && contains(conn, k)) {
			continue
		}
		for _, v := range vs {
			fs = append(fs, h1.Field{Key: k, Value: v})
		}
	}
	if up := upgradeType(in); up != "" {
		fs = append(fs, h1.Field{Key: hdrConnection, Value: "Upgrade"}, h1.Field{Key: hdrUpgrade, Value: in[hdrUpgrade][0]})
	}
	if headerHasToken(in[hdrTE], "trailers") {
		fs = append(fs, h1.Field{Key: hdrTE, Value: "trailers"})
	}
	if len(r.Trailer) > 0 {
		fs = append(fs, h1.Field{Key: "Trailer", Value: trailerNames(r.Trailer)})
	}
	fs = appendForwarded(ex, in, fs)
	fs = append(fs, h1.Field{Key: hdrRequestID, Value: ex.reqID[0]})
	f.fields = fs
	// With a tracer the gateway's span is the upstream's parent; without
	// one the client's traceparent passes unchanged, or a new trace starts.
	if !injectTrace(ex, setField(&f.fields)) {
		if tp := in[hdrTraceparent]; len(tp) != 1 || !validTraceparent(tp[0]) {
			f.fields = append(f.fields, h1.Field{Key: hdrTraceparent, Value: newTraceparent()})
		} else {
			f.fields = append(f.fields, h1.Field{Key: hdrTraceparent, Value: tp[0]})
			for _, ts := range in[hdrTracestate] {
				f.fields = append(f.fields, h1.Field{Key: hdrTracestate, Value: ts})
			}
		}
	}
}

// gatewaySets reports a client field the gateway replaces with its own:
// the request id and trace context always, forwarding fields unless the
// peer is a trusted proxy (whose X-Forwarded-* are kept, the peer added).
func gatewaySets(ex *exchange, k string) bool {
	switch k {
	case hdrRequestID, hdrTraceparent, hdrTracestate, hdrXFF:
		return true
	case hdrXFProto, hdrXFHost, hdrForwarded, hdrXRealIP:
		return !ex.trusted
	}
	return false
}

func trailerNames(t http.Header) string {
	names := make([]string, 0, len(t))
	for k := range t {
		names = append(names, k)
	}
	return strings.Join(names, ", ")
}

// appendForwarded adds X-Forwarded-For/Proto/Host. Values sent by a
// trusted proxy are kept (the peer appended to X-Forwarded-For); anyone
// else's are replaced, so clients cannot spoof their address.
func appendForwarded(ex *exchange, in http.Header, fs []h1.Field) []h1.Field {
	r := ex.r
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if !ex.trusted {
		return append(fs, h1.Field{Key: hdrXFF, Value: ex.peerStr}, h1.Field{Key: hdrXFProto, Value: proto},
			h1.Field{Key: hdrXFHost, Value: r.Host})
	}
	if prior := in[hdrXFF]; len(prior) > 0 {
		fs = append(fs, h1.Field{Key: hdrXFF, Value: strings.Join(prior, ", ") + ", " + ex.peerStr})
	} else {
		fs = append(fs, h1.Field{Key: hdrXFF, Value: ex.peerStr})
	}
	if len(in[hdrXFProto]) == 0 {
		fs = append(fs, h1.Field{Key: hdrXFProto, Value: proto})
	}
	if len(in[hdrXFHost]) == 0 {
		fs = append(fs, h1.Field{Key: hdrXFHost, Value: r.Host})
	}
	return fs
}

// setField returns a setter of the upstream request's fields for the
// trace propagator: a key it sets replaces the field.
func setField(fs *[]h1.Field) func(key, value string) {
	return func(key, value string) {
		k := http.CanonicalHeaderKey(key)
		for i := range *fs {
			if (*fs)[i].Key == k {
				(*fs)[i].Value = value
				return
			}
		}
		*fs = append(*fs, h1.Field{Key: k, Value: value})
	}
}
