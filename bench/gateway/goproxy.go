package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"

	"github.com/plexushq/plexus/bench/internal/benchutil"
)

// runGoProxy is the floor of a Go proxy: net/http's server and
// httputil.ReverseProxy with a keep-alive Transport, nothing else. It shows
// how much of Plexus's cost is net/http itself.
func runGoProxy(addr, backend string) {
	u, err := url.Parse("http://" + backend)
	if err != nil {
		log.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	srv := &http.Server{Addr: addr, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

func startGoProxy(ctx context.Context, ps *benchutil.Procs, s setup, backend string) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := listenAddr()
	if err != nil {
		return nil, err
	}
	pr, err := ps.Start(fmt.Sprintf("goproxy-%dc", s.cores), s.proxyCPU, s.env(), self, "goproxy", addr, backend)
	if err != nil {
		return nil, err
	}
	return &target{name: "Go httputil", url: "http://" + addr + "/", proc: pr}, nil
}
