package client

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/plexushq/plexus/balance"
	"github.com/plexushq/plexus/registry"
)

// Discovery is where the client finds instances. *registry.Cache satisfies
// it; it must answer from memory, never waiting on the network.
type Discovery interface {
	Service(name string) *registry.ServiceSnapshot
}

var _ Discovery = (*registry.Cache)(nil)

// maxServices bounds the per-service state the client keeps.
const maxServices = 4096

// services holds the balancing state of every service called.
type services struct {
	mu sync.Mutex
	m  map[string]*serviceState
}

// serviceState is the balancing state of one service, rebuilt only when the
// registry snapshot's generation changes. Endpoints are kept across
// rebuilds (by instance id) so EWMA latency and in-flight counts survive.
type serviceState struct {
	name    string
	picker  balance.Picker
	latency *latencyHist
	mu      sync.Mutex // serializes rebuilds
	view    atomic.Pointer[serviceView]
}

// serviceView is one immutable balancing view of a service.
type serviceView struct {
	gen   uint64
	set   *balance.Set
	insts []*registry.Instance // parallel to set
	bases []string             // instance URLs without a trailing slash
}

func (ss *services) get(name string, newPicker func() balance.Picker) *serviceState {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]*serviceState{}
	}
	st := ss.m[name]
	if st == nil {
		if len(ss.m) >= maxServices {
			for k := range ss.m { // drop an arbitrary one; it is rebuilt on next use
				delete(ss.m, k)
				break
			}
		}
		st = &serviceState{name: name, picker: newPicker(), latency: newLatencyHist()}
		ss.m[name] = st
	}
	return st
}

// current returns the view for snap, rebuilding it when the snapshot changed.
func (st *serviceState) current(snap *registry.ServiceSnapshot) *serviceView {
	if v := st.view.Load(); v != nil && v.gen == snap.Gen {
		return v
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	old := st.view.Load()
	if old != nil && old.gen == snap.Gen {
		return old
	}
	prev := map[string]*balance.Endpoint{}
	if old != nil {
		for i := range old.set.Len() {
			prev[old.set.At(i).ID()] = old.set.At(i)
		}
	}
	healthy := snap.Healthy
	if len(healthy) > 64 { // balance.Mask holds 64 instances
		healthy = healthy[:64]
	}
	v := &serviceView{gen: snap.Gen, insts: healthy, bases: make([]string, len(healthy))}
	eps := make([]*balance.Endpoint, len(healthy))
	for i, in := range healthy {
		w := max(in.Weight, 1)
		if e := prev[in.ID]; e != nil && e.Weight() == w {
			eps[i] = e
		} else {
			eps[i] = balance.NewEndpoint(in.ID, w)
		}
		v.bases[i] = strings.TrimRight(in.URL, "/")
	}
	v.set = balance.NewSet(eps)
	st.view.Store(v)
	return v
}
