package main

import (
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backendBody is the fixed ~100-byte answer of the backend.
var backendBody = strings.Repeat("plexus-bench ", 7) + "01234567\n"

// runBackend serves backendBody on every path, with keep-alive, until killed.
func runBackend(addr string) {
	body := []byte(backendBody)
	clen := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Type"] = []string{"text/plain; charset=utf-8"}
		hd["Content-Length"] = []string{clen}
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	log.Fatal(srv.ListenAndServe())
}
