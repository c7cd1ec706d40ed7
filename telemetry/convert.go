package telemetry

import (
	"encoding/hex"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// unknownService names spans whose resource has no service.name.
const unknownService = "unknown_service"

// spansFromRequest converts an OTLP export request into store spans. Spans
// with invalid ids are skipped and counted in rejected.
func spansFromRequest(req *coltracepb.ExportTraceServiceRequest) (spans []Span, rejected int) {
	for _, rs := range req.GetResourceSpans() {
		service := unknownService
		res := protoAttrs(rs.GetResource().GetAttributes())
		if s, ok := res["service.name"].(string); ok && s != "" {
			service = s
		}
		for _, ss := range rs.GetScopeSpans() {
			scope := protoScope(ss.GetScope())
			for _, ps := range ss.GetSpans() {
				sp, ok := spanFromProto(service, ps)
				if !ok {
					rejected++
					continue
				}
				sp.Resource, sp.Scope = res, scope
				spans = append(spans, sp)
			}
		}
	}
	return spans, rejected
}

func protoScope(s *commonpb.InstrumentationScope) *Scope {
	if s.GetName() == "" && s.GetVersion() == "" {
		return nil
	}
	return &Scope{Name: clipString(s.GetName()), Version: clipString(s.GetVersion())}
}

func spanFromProto(service string, ps *tracepb.Span) (Span, bool) {
	var tid trace.TraceID
	var sid trace.SpanID
	if len(ps.GetTraceId()) != len(tid) || len(ps.GetSpanId()) != len(sid) {
		return Span{}, false
	}
	copy(tid[:], ps.GetTraceId())
	copy(sid[:], ps.GetSpanId())
	if !tid.IsValid() || !sid.IsValid() {
		return Span{}, false
	}
	sp := Span{
		TraceID: tid.String(), SpanID: sid.String(), Service: service,
		Name: clipString(ps.GetName()), Kind: protoKind(ps.GetKind()),
		Attributes: protoAttrs(ps.GetAttributes()),
	}
	if p := ps.GetParentSpanId(); len(p) == len(sid) {
		var pid trace.SpanID
		copy(pid[:], p)
		if pid.IsValid() {
			sp.ParentSpanID = pid.String()
		}
	} else if len(p) != 0 {
		return Span{}, false
	}
	sp.setTimes(unixNano(ps.GetStartTimeUnixNano()), unixNano(ps.GetEndTimeUnixNano()))
	switch ps.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_ERROR:
		sp.Status = StatusError
	case tracepb.Status_STATUS_CODE_OK:
		sp.Status = StatusOK
	default:
		sp.Status = StatusUnset
	}
	sp.StatusMessage = clipString(ps.GetStatus().GetMessage())
	for i, e := range ps.GetEvents() {
		if i == maxEventsPerSpn {
			break
		}
		sp.Events = append(sp.Events, SpanEvent{Name: clipString(e.GetName()),
			Time: unixNano(e.GetTimeUnixNano()).UTC(), Attributes: protoAttrs(e.GetAttributes())})
	}
	for i, l := range ps.GetLinks() {
		if i == maxEventsPerSpn || len(l.GetTraceId()) != 16 || len(l.GetSpanId()) != 8 {
			continue
		}
		sp.Links = append(sp.Links, SpanLink{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
	}
	return sp, true
}

func unixNano(n uint64) time.Time {
	if n > 1<<62 {
		n = 1 << 62
	}
	return time.Unix(0, int64(n))
}

func protoKind(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return "internal"
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	}
	return ""
}

func protoAttrs(kvs []*commonpb.KeyValue) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]any, min(len(kvs), maxAttrsPerSpan))
	for _, kv := range kvs {
		if len(m) == maxAttrsPerSpan {
			break
		}
		m[clipString(kv.GetKey())] = protoValue(kv.GetValue(), 0)
	}
	return m
}

// protoValue converts an AnyValue; depth bounds nested arrays and maps.
func protoValue(v *commonpb.AnyValue, depth int) any {
	if depth > 4 {
		return nil
	}
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return clipString(x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return clipBytes(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		vals := x.ArrayValue.GetValues()
		out := make([]any, 0, min(len(vals), maxAttrsPerSpan))
		for i, e := range vals {
			if i == maxAttrsPerSpan {
				break
			}
			out = append(out, protoValue(e, depth+1))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		m := map[string]any{}
		for i, kv := range x.KvlistValue.GetValues() {
			if i == maxAttrsPerSpan {
				break
			}
			m[clipString(kv.GetKey())] = protoValue(kv.GetValue(), depth+1)
		}
		return m
	}
	return nil
}

// spanFromSDK converts a span ended in this process; res is the span's
// resource, converted once per provider (see storeProcessor).
func spanFromSDK(s sdktrace.ReadOnlySpan, res map[string]any) Span {
	service := unknownService
	if v, ok := res["service.name"].(string); ok && v != "" {
		service = v
	}
	sc := s.SpanContext()
	sp := Span{TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Service: service,
		Name: clipString(s.Name()), Kind: sdkKind(s.SpanKind()), Attributes: sdkAttrs(s.Attributes()), Resource: res}
	if is := s.InstrumentationScope(); is.Name != "" {
		sp.Scope = &Scope{Name: is.Name, Version: is.Version}
	}
	if p := s.Parent(); p.SpanID().IsValid() {
		sp.ParentSpanID = p.SpanID().String()
	}
	sp.setTimes(s.StartTime(), s.EndTime())
	switch s.Status().Code {
	case codes.Error:
		sp.Status = StatusError
	case codes.Ok:
		sp.Status = StatusOK
	default:
		sp.Status = StatusUnset
	}
	sp.StatusMessage = clipString(s.Status().Description)
	for i, e := range s.Events() {
		if i == maxEventsPerSpn {
			break
		}
		sp.Events = append(sp.Events, SpanEvent{Name: clipString(e.Name), Time: e.Time.UTC(), Attributes: sdkAttrs(e.Attributes)})
	}
	for i, l := range s.Links() {
		if i == maxEventsPerSpn {
			break
		}
		sp.Links = append(sp.Links, SpanLink{TraceID: l.SpanContext.TraceID().String(), SpanID: l.SpanContext.SpanID().String()})
	}
	return sp
}

func sdkKind(k trace.SpanKind) string {
	if k == trace.SpanKindUnspecified {
		return "internal"
	}
	return k.String()
}

func sdkAttrs(kvs []attribute.KeyValue) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]any, min(len(kvs), maxAttrsPerSpan))
	for _, kv := range kvs {
		if len(m) == maxAttrsPerSpan {
			break
		}
		v := kv.Value.AsInterface()
		if s, ok := v.(string); ok {
			v = clipString(s)
		}
		m[string(kv.Key)] = v
	}
	return m
}
