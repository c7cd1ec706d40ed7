package registry

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

// APIConfig configures the registry's HTTP API. The zero value works.
type APIConfig struct {
	// KeepAlive is the interval of comment lines on an idle watch stream.
	// Default 15s.
	KeepAlive time.Duration
	// RequestTimeout bounds the engine calls of one request; past it the
	// answer is 503 with Retry-After. Default 5s.
	RequestTimeout time.Duration
	// Streams caps concurrent watch streams (a node shares one limiter
	// between its APIs). Nil: no cap.
	Streams StreamLimiter
	// Logger for failed requests. Default slog.Default().
	Logger *slog.Logger
}

// StreamLimiter caps concurrent long-lived answers. Acquire takes a slot
// without waiting, or returns the error to answer with.
type StreamLimiter interface {
	Acquire() (release func(), err error)
}

// API serves the registry endpoints of docs/openapi.yaml. Handlers are thin: decode,
// call the Store, encode; errors go through the API's httpx.Errors.
type API struct {
	store *Store
	cfg   APIConfig
	errs  httpx.Errors
}

// NewAPI returns the HTTP API over store.
func NewAPI(store *Store, cfg APIConfig) *API {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &API{store: store, cfg: cfg, errs: httpx.Errors{Log: cfg.Logger, Domain: apiProblem}}
}

// Mount registers the routes with handle (e.g. a ServeMux's Handle).
// Every route but the watch stream runs under the request deadline.
func (a *API) Mount(handle func(pattern string, h http.Handler)) {
	handle("GET /v1/watch", http.HandlerFunc(a.watch))
	for pattern, h := range map[string]http.HandlerFunc{
		"PUT /v1/services/{service}/instances/{id}":           a.register,
		"GET /v1/services/{service}/instances/{id}":           a.getInstance,
		"DELETE /v1/services/{service}/instances/{id}":        a.deregister,
		"PUT /v1/services/{service}/instances/{id}/heartbeat": a.heartbeat,
		"PUT /v1/services/{service}/instances/{id}/status":    a.setStatus,
		"GET /v1/services":             a.listServices,
		"GET /v1/services/{service}":   a.getService,
		"POST /admin/register-service": a.registerLegacy,
	} {
		handle(pattern, httpx.Deadline(a.cfg.RequestTimeout, h))
	}
}

// Handler returns a mux serving only the registry routes (for tests and
// embedding).
func (a *API) Handler() http.Handler { return httpx.Mux(a.Mount) }

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.errs.Write(w, r, err)
}

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	var reg Registration
	if p := httpx.DecodeJSON(w, r, &reg, MaxBodyBytes); p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	inst, created, err := a.store.Register(r.Context(), r.PathValue("service"), r.PathValue("id"), &reg)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, inst)
}

// legacyRegistration is the seed gateway's POST /admin/register-service
// body; the instance may carry every field of a Registration.
type legacyRegistration struct {
	ServiceName string `json:"serviceName"`
	Instance    *struct {
		ID string `json:"id"`
		registrationJSON
	} `json:"instance"`
}

func (a *API) registerLegacy(w http.ResponseWriter, r *http.Request) {
	var body legacyRegistration
	if p := httpx.DecodeJSON(w, r, &body, MaxBodyBytes); p != nil {
		httpx.WriteProblem(w, p.With("error", p.Detail))
		return
	}
	if body.Instance == nil {
		httpx.WriteProblem(w, apiProblem(invalid("instance", "is required: {id, url, weight?}")).With("error", "instance is required"))
		return
	}
	reg := body.Instance.registration()
	_, _, err := a.store.Register(r.Context(), body.ServiceName, body.Instance.ID, &reg)
	if err != nil {
		// The seed's answer carries the message as "error" too.
		p := a.errs.Problem(err)
		a.fail(w, r, p.With("error", p.Detail))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Service registered"})
}

func (a *API) getInstance(w http.ResponseWriter, r *http.Request) {
	inst, err := a.store.Get(r.Context(), r.PathValue("service"), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, inst)
}

func (a *API) deregister(w http.ResponseWriter, r *http.Request) {
	if err := a.store.Deregister(r.Context(), r.PathValue("service"), r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) heartbeat(w http.ResponseWriter, r *http.Request) {
	inst, err := a.store.Heartbeat(r.Context(), r.PathValue("service"), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, HeartbeatAnswer{ExpiresAt: inst.ExpiresAt, TTL: inst.TTL})
}

type statusRequest struct {
	Status Status `json:"status"`
}

func (a *API) setStatus(w http.ResponseWriter, r *http.Request) {
	var body statusRequest
	if p := httpx.DecodeJSON(w, r, &body, 4<<10); p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	inst, err := a.store.SetStatus(r.Context(), r.PathValue("service"), r.PathValue("id"), body.Status)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, inst)
}

func (a *API) listServices(w http.ResponseWriter, r *http.Request) {
	list, err := a.store.List(r.Context(), "")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []ServiceSummary{}
	for _, inst := range list {
		if len(out) == 0 || out[len(out)-1].Name != inst.Service {
			out = append(out, ServiceSummary{Name: inst.Service})
		}
		s := &out[len(out)-1]
		s.Instances++
		switch inst.Status {
		case StatusHealthy:
			s.Healthy++
		case StatusUnhealthy:
			s.Unhealthy++
		case StatusDraining:
			s.Draining++
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// ServiceInfo is the answer of GET /v1/services/{service}.
type ServiceInfo struct {
	Name      string      `json:"name"`
	Instances []*Instance `json:"instances"`
}

func (a *API) getService(w http.ResponseWriter, r *http.Request) {
	service := r.PathValue("service")
	list, err := a.store.List(r.Context(), service)
	if err == nil && len(list) == 0 {
		err = notFound(service, "")
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, ServiceInfo{Name: service, Instances: list})
}

// Snapshot is the data of the first event of GET /v1/watch.
type Snapshot struct {
	Instances []*Instance `json:"instances"`
}

// watch streams the registry as server-sent events: one "snapshot" event
// with every live instance, then "put" and "delete" events (data: an
// Event), and a comment line when idle. It ends when the client goes, the
// server shuts down, a write fails or times out, or the watch fails.
func (a *API) watch(w http.ResponseWriter, r *http.Request) {
	release, err := a.acquire()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer release()
	sctx, cancel := context.WithTimeout(r.Context(), httpx.RequestTimeout(a.cfg.RequestTimeout))
	wt, initial, err := a.store.Watch(sctx, r.URL.Query().Get("service"))
	cancel()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer wt.Stop()
	sse, ctx := httpx.StartSSE(w, r, httpx.SSEConfig{Heartbeat: a.cfg.KeepAlive, Comment: "keepalive"})
	defer sse.Close()
	if initial == nil {
		initial = []*Instance{}
	}
	if send(sse, "snapshot", 0, Snapshot{Instances: initial}) != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-wt.updates():
			if !ok {
				return
			}
			if ev, ok := toEvent(e); ok {
				if send(sse, string(ev.Type), ev.Revision, ev) != nil {
					return
				}
			}
		}
	}
}

func (a *API) acquire() (func(), error) {
	if a.cfg.Streams == nil {
		return func() {}, nil
	}
	return a.cfg.Streams.Acquire()
}

func send(sse *httpx.SSE, name string, id uint64, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sid := ""
	if id > 0 {
		sid = httpx.ID(id)
	}
	return sse.Event(name, sid, b)
}
