package engine

import (
	"strings"

	"github.com/nats-io/nats.go"
)

// Info describes the engine connection as it is now, for /health.
type Info struct {
	// Mode is "embedded" or "external".
	Mode string `json:"mode"`
	// Connection is the client's state: "connected", "reconnecting",
	// "connecting", "draining" or "closed".
	Connection string `json:"connection"`
	// Server, ServerName, ServerVersion and Cluster name the server the
	// connection is on (empty while it is not connected).
	Server        string `json:"server,omitempty"`
	ServerName    string `json:"serverName,omitempty"`
	ServerVersion string `json:"serverVersion,omitempty"`
	Cluster       string `json:"cluster,omitempty"`
	// Replicas is what this node gives the streams and buckets it creates.
	Replicas int `json:"replicas"`
	// MaxPayload is the server's max_payload in bytes.
	MaxPayload int64 `json:"maxPayloadBytes"`
	// Listen is the embedded engine's listener, empty without one.
	Listen string `json:"listen,omitempty"`
}

// Info reads the connection's state; it makes no engine call.
func (e *Engine) Info() Info {
	in := Info{Mode: "external", Replicas: e.cfg.Replicas}
	if e.srv != nil {
		in.Mode, in.Listen = "embedded", e.ClientURL()
	}
	if e.nc == nil {
		in.Connection = "closed"
		return in
	}
	in.Connection = connectionState(e.nc.Status())
	in.MaxPayload = e.nc.MaxPayload()
	if e.nc.IsConnected() {
		in.Server = e.nc.ConnectedUrlRedacted()
		if e.srv != nil {
			in.Server = "in-process"
		}
		in.ServerName = e.nc.ConnectedServerName()
		in.ServerVersion = e.nc.ConnectedServerVersion()
		in.Cluster = e.nc.ConnectedClusterName()
	}
	return in
}

func connectionState(s nats.Status) string {
	switch s {
	case nats.CONNECTED:
		return "connected"
	case nats.RECONNECTING:
		return "reconnecting"
	case nats.CONNECTING:
		return "connecting"
	case nats.DRAINING_SUBS, nats.DRAINING_PUBS:
		return "draining"
	case nats.CLOSED:
		return "closed"
	}
	return strings.ToLower(s.String())
}
