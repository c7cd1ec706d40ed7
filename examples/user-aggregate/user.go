package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/plexushq/plexus/eventstore"
)

// Event types of a user, as the seed's UserAggregate named them
// (docs/examples.md).
const (
	UserCreated = "user.created"
	UserUpdated = "user.updated"
	UserDeleted = "user.deleted"
	UserLogin   = "user.login"
	UserLogout  = "user.logout"
)

// User is the aggregate's state, rebuilt from its events.
type User struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Email     string    `json:"email"`
	Deleted   bool      `json:"deleted"`
	Online    bool      `json:"online"`
	Logins    int       `json:"logins"`
	LastLogin time.Time `json:"lastLogin"`
}

// Payloads of the events.
type (
	created struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Email    string `json:"email"`
	}
	updated struct {
		Username *string `json:"username,omitempty"`
		Email    *string `json:"email,omitempty"`
	}
	loggedIn struct {
		At time.Time `json:"at"`
	}
)

// Errors of the user commands.
var (
	ErrExists   = errors.New("user already exists")
	ErrNoUser   = errors.New("no such user")
	ErrDeleted  = errors.New("user is deleted")
	ErrNoChange = errors.New("nothing to change")
)

// applyUser folds one event into a user. It never fails on stored events
// of a known type, so old streams always load.
func applyUser(u User, e eventstore.Envelope) (User, error) {
	switch e.Type {
	case UserCreated:
		var c created
		if err := e.Decode(&c); err != nil {
			return u, err
		}
		u = User{ID: c.ID, Username: c.Username, Email: c.Email}
	case UserUpdated:
		var c updated
		if err := e.Decode(&c); err != nil {
			return u, err
		}
		if c.Username != nil {
			u.Username = *c.Username
		}
		if c.Email != nil {
			u.Email = *c.Email
		}
	case UserDeleted:
		u.Deleted, u.Online = true, false
	case UserLogin:
		var c loggedIn
		if err := e.Decode(&c); err != nil {
			return u, err
		}
		u.Online, u.Logins, u.LastLogin = true, u.Logins+1, c.At
	case UserLogout:
		u.Online = false
	default:
		return u, fmt.Errorf("user: unknown event type %q", e.Type)
	}
	return u, nil
}

// Users runs the user commands: each loads the aggregate, checks the
// command against its state, raises events and saves them with optimistic
// concurrency (a concurrent writer gets a *eventstore.ConflictError).
type Users struct {
	repo *eventstore.Repository[User]
}

// NewUsers returns the user service on a store.
func NewUsers(store *eventstore.Store, snapshotEvery int) *Users {
	return &Users{repo: eventstore.NewRepository(store, applyUser,
		eventstore.RepositoryConfig{SnapshotEvery: snapshotEvery, Source: "user-service"})}
}

func streamOf(id string) string { return "user-" + id }

// Create makes a new user: version 1 of its stream.
func (s *Users) Create(ctx context.Context, id, username, email string) (*eventstore.Aggregate[User], error) {
	a, err := s.repo.Load(ctx, streamOf(id))
	if err != nil {
		return nil, err
	}
	if a.Exists() {
		return nil, fmt.Errorf("%w: %s", ErrExists, id)
	}
	if err := a.Raise(UserCreated, created{ID: id, Username: username, Email: email}); err != nil {
		return nil, err
	}
	_, err = s.repo.Save(ctx, a)
	return a, err
}

// Update changes the username and/or email.
func (s *Users) Update(ctx context.Context, id string, username, email *string) (*eventstore.Aggregate[User], error) {
	return s.command(ctx, id, func(a *eventstore.Aggregate[User]) error {
		if username == nil && email == nil {
			return ErrNoChange
		}
		return a.Raise(UserUpdated, updated{Username: username, Email: email})
	})
}

// Delete marks the user deleted; later commands are refused.
func (s *Users) Delete(ctx context.Context, id string) (*eventstore.Aggregate[User], error) {
	return s.command(ctx, id, func(a *eventstore.Aggregate[User]) error {
		return a.Raise(UserDeleted, struct{}{})
	})
}

// Login records a login.
func (s *Users) Login(ctx context.Context, id string, at time.Time) (*eventstore.Aggregate[User], error) {
	return s.command(ctx, id, func(a *eventstore.Aggregate[User]) error {
		return a.Raise(UserLogin, loggedIn{At: at.UTC()})
	})
}

// Logout records a logout (nothing when the user is not online).
func (s *Users) Logout(ctx context.Context, id string) (*eventstore.Aggregate[User], error) {
	return s.command(ctx, id, func(a *eventstore.Aggregate[User]) error {
		if !a.State.Online {
			return nil
		}
		return a.Raise(UserLogout, struct{}{})
	})
}

// Get loads a user.
func (s *Users) Get(ctx context.Context, id string) (*eventstore.Aggregate[User], error) {
	a, err := s.repo.Load(ctx, streamOf(id))
	if err == nil && !a.Exists() {
		err = fmt.Errorf("%w: %s", ErrNoUser, id)
	}
	return a, err
}

func (s *Users) command(ctx context.Context, id string, do func(a *eventstore.Aggregate[User]) error) (*eventstore.Aggregate[User], error) {
	a, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.State.Deleted {
		return nil, fmt.Errorf("%w: %s", ErrDeleted, id)
	}
	if err := do(a); err != nil {
		return nil, err
	}
	_, err = s.repo.Save(ctx, a)
	return a, err
}

// Directory is a read model: users by email, built by a projection.
type Directory map[string]string

func applyDirectory(d *Directory, e eventstore.Envelope) error {
	u, err := applyUser(User{}, e)
	switch e.Type {
	case UserCreated:
		if err != nil {
			return err
		}
		(*d)[u.Email] = u.ID
	case UserUpdated:
		var c updated
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return err
		}
		if c.Email != nil {
			for email, id := range *d {
				if "user-"+id == e.Stream {
					delete(*d, email)
					(*d)[*c.Email] = id
				}
			}
		}
	case UserDeleted:
		for email, id := range *d {
			if "user-"+id == e.Stream {
				delete(*d, email)
			}
		}
	}
	return nil
}
