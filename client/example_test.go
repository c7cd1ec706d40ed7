package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/plexushq/plexus/client"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/registry"
)

// oneService is a fixed Discovery for the example; programs use a
// *registry.Cache (registry.NewHTTPCache outside a node).
type oneService struct{ snap *registry.ServiceSnapshot }

func (d oneService) Service(name string) *registry.ServiceSnapshot {
	if name == d.snap.Name {
		return d.snap
	}
	return nil
}

func Example() {
	users := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/users/1" {
			httpx.WriteJSON(w, http.StatusOK, map[string]string{"name": "ann"})
			return
		}
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusNotFound, "user-not-found", "no user "+r.URL.Path))
	}))
	defer users.Close()
	inst := &registry.Instance{ID: "users-1", URL: users.URL, Weight: 1, Status: registry.StatusHealthy}
	c, err := client.New(oneService{&registry.ServiceSnapshot{Name: "users", Gen: 1,
		Instances: []*registry.Instance{inst}, Healthy: []*registry.Instance{inst}}}, client.Config{})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()

	var user struct{ Name string }
	if err := c.GetJSON(context.Background(), "users", "/users/1", &user); err != nil {
		panic(err)
	}
	fmt.Println(user.Name)

	err = c.GetJSON(context.Background(), "users", "/users/2", &user)
	var pe *client.ProblemError
	if errors.As(err, &pe) {
		fmt.Println(pe.Problem.Status, pe.Detail)
	}
	_, err = c.Call(context.Background(), "billing", "GET", "/", nil)
	fmt.Println(errors.Is(err, client.ErrNoInstances))
	// Output:
	// ann
	// 404 no user /users/2
	// true
}
