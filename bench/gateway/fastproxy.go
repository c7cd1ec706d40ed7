package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/plexushq/plexus/bench/internal/benchutil"
)

// runFastProxy is the spike's candidate (b) at its ceiling: a bare
// fasthttp server with a fasthttp HostClient, no gateway features at all.
// It shows what the transport alone can reach on this machine.
func runFastProxy(addr, backend string) {
	hc := &fasthttp.HostClient{Addr: backend, MaxConns: 4096, MaxIdleConnDuration: time.Minute}
	h := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		req.SetHost(backend)
		if err := hc.Do(req, &ctx.Response); err != nil {
			ctx.Error("bad gateway", fasthttp.StatusBadGateway)
		}
	}
	srv := &fasthttp.Server{Handler: h, ReadTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		NoDefaultServerHeader: true}
	log.Fatal(srv.ListenAndServe(addr))
}

func startFastProxy(ctx context.Context, ps *benchutil.Procs, s setup, backend string) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := listenAddr()
	if err != nil {
		return nil, err
	}
	pr, err := ps.Start(fmt.Sprintf("fastproxy-%dc", s.cores), s.proxyCPU, s.env(), self, "fastproxy", addr, backend)
	if err != nil {
		return nil, err
	}
	return &target{name: "bare fasthttp", url: "http://" + addr + "/", proc: pr}, nil
}
