package gateway

import "testing"

func TestClientIP(t *testing.T) {
	tr := trust{}
	for _, p := range []string{"10.0.0.0/8", "192.168.1.7"} {
		pf, _ := parsePrefix(p)
		tr.nets = append(tr.nets, pf)
	}
	tests := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer ignores XFF", "203.0.113.5:1000", []string{"1.2.3.4"}, "203.0.113.5"},
		{"trusted peer, one hop", "10.1.2.3:1000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted chain skipped", "10.1.2.3:1000", []string{"198.51.100.7, 192.168.1.7", "10.9.9.9"}, "198.51.100.7"},
		{"spoof left of the real client ignored", "10.1.2.3:1000", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"garbage stops the walk", "10.1.2.3:1000", []string{"198.51.100.7, nonsense"}, "10.1.2.3"},
		{"all trusted falls back to peer", "10.1.2.3:1000", []string{"10.0.0.1"}, "10.1.2.3"},
		{"ipv6 peer", "[2001:db8::1]:443", nil, "2001:db8::1"},
		{"mapped ipv4 peer", "[::ffff:10.1.2.3]:1000", []string{"198.51.100.7"}, "198.51.100.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, s := peerAddr(tc.peer)
			if got := tr.clientIP(a, s, tc.xff); got != tc.want {
				t.Errorf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTraceparentAndRequestIDRules(t *testing.T) {
	for tp, want := range map[string]bool{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":      true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00":      true,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what": true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x":    false,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":      false,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":      false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":      false,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":      false,
		"garbage": false,
	} {
		if got := validTraceparent(tp); got != want {
			t.Errorf("validTraceparent(%q) = %v, want %v", tp, got, want)
		}
	}
	if !validTraceparent(newTraceparent()) {
		t.Error("newTraceparent is not valid W3C")
	}
	for id, want := range map[string]bool{"abc-123": true, "": false, "a b": false, "x\ny": false, string(make([]byte, 129)): false} {
		if got := validRequestID(id); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}
