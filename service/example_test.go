package service_test

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/plexushq/plexus/service"
)

// A whole microservice: it registers with the node at PLEXUS_ADMIN_URL,
// serves /health and /metrics, traces and logs each request, and drains on
// SIGTERM.
func Example() {
	err := service.Run(context.Background(), service.Config{
		Name:        "hello",
		Addr:        ":8080",
		RegistryURL: os.Getenv("PLEXUS_ADMIN_URL"),
		Token:       os.Getenv("PLEXUS_ADMIN_TOKEN"),
		Version:     "1.0.0",
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Calling another service from a handler with the service's client.
func ExampleService_Client() {
	ctx := context.Background()
	s, err := service.New(ctx, service.Config{Name: "orders", RegistryURL: "http://127.0.0.1:3100", Token: os.Getenv("PLEXUS_ADMIN_TOKEN")})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		var user struct{ Name string }
		if err := s.Client().GetJSON(r.Context(), "users", "/users/42", &user); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "order %s for %s\n", r.PathValue("id"), user.Name)
	})
	_ = s.Run(ctx, mux)
}
