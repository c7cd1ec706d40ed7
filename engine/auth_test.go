package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/clustertest"
)

// dial connects to url with opts and closes the connection again; the
// error is the server's answer.
func dial(url string, opts ...nats.Option) error {
	nc, err := nats.Connect(url, append([]nats.Option{nats.NoReconnect(), nats.Timeout(2 * time.Second)}, opts...)...)
	if err != nil {
		return err
	}
	nc.Close()
	return nil
}

func startErr(cfg engine.Config) (*engine.Engine, error) {
	cfg.Logger = quiet
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return engine.Start(ctx, cfg)
}

// TestListenRequiresAuth: the exposed engine used to accept anyone who
// reached the port (who could then read the queue receipt key and write
// registry entries the gateway routes to). Now it requires the generated
// credentials, kept 0600 in the data dir and the same across restarts.
func TestListenRequiresAuth(t *testing.T) {
	dir := t.TempDir()
	e := start(t, engine.Config{DataDir: dir, Listen: "127.0.0.1:0"})
	url := e.ClientURL()
	if err := dial(url); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("anonymous client: %v, want an authorization violation", err)
	}
	if err := dial(url, nats.UserInfo(engine.ListenUser, "guess-guess-guess")); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	path := filepath.Join(dir, engine.PasswordFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	pw, _ := os.ReadFile(path)
	if err := dial(url, nats.UserInfo(engine.ListenUser, strings.TrimSpace(string(pw)))); err != nil {
		t.Fatalf("the generated credentials: %v", err)
	}
	if err := dial(url, e.ClientOptions()...); err != nil {
		t.Fatalf("ClientOptions: %v", err)
	}
	stop(t, e)
	e2 := start(t, engine.Config{DataDir: dir, Listen: "127.0.0.1:0"})
	defer stop(t, e2)
	if err := dial(e2.ClientURL(), nats.UserInfo(engine.ListenUser, strings.TrimSpace(string(pw)))); err != nil {
		t.Fatalf("the password changed across a restart: %v", err)
	}
}

func userSeed(t *testing.T) (seedFile, pub string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ = kp.PublicKey()
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return seedFile, pub
}

// TestListenWithGivenCredentials: a token, a user and password, or an
// nkey given to the node are what its listener requires, and what the node
// itself and other nodes connect with.
func TestListenWithGivenCredentials(t *testing.T) {
	seed, _ := userSeed(t)
	for _, tc := range []struct {
		name   string
		cfg    engine.Config
		client nats.Option
	}{
		{"token", engine.Config{Token: "a-token-of-some-length"}, nats.Token("a-token-of-some-length")},
		{"user", engine.Config{User: "ops", Password: "pw-pw-pw-pw-pw-pw"}, nats.UserInfo("ops", "pw-pw-pw-pw-pw-pw")},
		{"nkey", engine.Config{NkeyFile: seed}, nkeyOption(t, seed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
			e := start(t, cfg)
			defer stop(t, e)
			if err := dial(e.ClientURL()); err == nil {
				t.Fatal("anonymous client accepted")
			}
			if err := dial(e.ClientURL(), tc.client); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(cfg.DataDir, engine.PasswordFile)); err == nil {
				t.Fatal("a password was generated although credentials were given")
			}
			other := cfg
			other.DataDir, other.Listen, other.URLs = "", "", []string{e.ClientURL()}
			o := start(t, other)
			stop(t, o)
		})
	}
}

// TestListenTLS: with a certificate the listener speaks TLS only; with a
// CA it also requires client certificates signed by it. The node's own
// in-process connection is unaffected.
func TestListenTLS(t *testing.T) {
	c := clustertest.NewCerts(t)
	e := start(t, engine.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", TLSCert: c.ServerCert, TLSKey: c.ServerKey})
	defer stop(t, e)
	auth := e.ClientOptions()
	if err := dial(e.ClientURL(), auth...); err == nil {
		t.Fatal("a plain-text client was accepted")
	}
	if err := dial(e.ClientURL(), append(auth, nats.RootCAs(c.CA))...); err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	m := start(t, engine.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", TLSCert: c.ServerCert, TLSKey: c.ServerKey, TLSCA: c.CA})
	defer stop(t, m)
	mauth := append(m.ClientOptions(), nats.RootCAs(c.CA))
	if err := dial(m.ClientURL(), mauth...); err == nil {
		t.Fatal("a client without a certificate was accepted by a listener that verifies clients")
	}
	if err := dial(m.ClientURL(), append(mauth, nats.ClientCert(c.ClientCert, c.ClientKey))...); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	x := start(t, engine.Config{URLs: []string{m.ClientURL()}, User: engine.ListenUser,
		Password: readPassword(t, m), TLSCA: c.CA, TLSCert: c.ClientCert, TLSKey: c.ClientKey})
	stop(t, x)
}

func readPassword(t *testing.T, e *engine.Engine) string {
	t.Helper()
	// The password option is the only one ClientOptions holds here; read
	// it back by connecting through a capturing option set.
	var o nats.Options
	for _, opt := range e.ClientOptions() {
		if err := opt(&o); err != nil {
			t.Fatal(err)
		}
	}
	return o.Password
}

// TestExternalClientOptions: every usual way to authenticate to an
// external server works: user and password, token, nkey seed, a
// credentials file (operator mode), TLS with a CA and a client
// certificate; without them the start fails and says why.
func TestExternalClientOptions(t *testing.T) {
	seed, pub := userSeed(t)
	certs := clustertest.NewCerts(t)
	tlsCfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CaFile: certs.CA, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	creds, operator := operatorSetup(t)
	for _, tc := range []struct {
		name      string
		configure func(o *server.Options)
		cfg       engine.Config
		harness   []nats.Option
	}{
		{"user", func(o *server.Options) { o.Username, o.Password = "u", "p-p-p-p-p-p-p-p" }, engine.Config{User: "u", Password: "p-p-p-p-p-p-p-p"},
			[]nats.Option{nats.UserInfo("u", "p-p-p-p-p-p-p-p")}},
		{"token", func(o *server.Options) { o.Authorization = "tok-tok-tok-tok-tok" }, engine.Config{Token: "tok-tok-tok-tok-tok"},
			[]nats.Option{nats.Token("tok-tok-tok-tok-tok")}},
		{"nkey", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, engine.Config{NkeyFile: seed},
			[]nats.Option{nkeyOption(t, seed)}},
		{"tls", func(o *server.Options) { o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tlsCfg, true, true, 2 },
			engine.Config{TLSCA: certs.CA, TLSCert: certs.ClientCert, TLSKey: certs.ClientKey},
			[]nats.Option{nats.RootCAs(certs.CA), nats.ClientCert(certs.ClientCert, certs.ClientKey)}},
		{"creds", operator, engine.Config{CredsFile: creds}, []nats.Option{nats.UserCredentials(creds)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := clustertest.Start(t, clustertest.Options{Size: 1, ClientOptions: tc.harness,
				Configure: func(_ int, o *server.Options) { tc.configure(o) }})
			cfg := tc.cfg
			cfg.URLs = cl.URLs()
			e, err := startErr(cfg)
			if err != nil {
				t.Fatalf("with credentials: %v", err)
			}
			stop(t, e)
			if _, err := startErr(engine.Config{URLs: cl.URLs(), ConnectTimeout: 2 * time.Second}); err == nil {
				t.Fatal("connected without credentials")
			}
		})
	}
}

// operatorSetup builds an operator-mode server (operator, account and
// user JWTs, an in-memory resolver) and a credentials file for the user.
func operatorSetup(t *testing.T) (string, func(*server.Options)) {
	t.Helper()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	skp, _ := nkeys.CreateAccount()
	spub, _ := skp.PublicKey()
	sjwt, err := jwt.NewAccountClaims(spub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	oc := jwt.NewOperatorClaims(opub)
	oc.SystemAccount = spub
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.IssuerAccount = apub
	ujwt, err := uc.Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	useed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, func(o *server.Options) {
		oclaims, err := jwt.DecodeOperatorClaims(ojwt)
		if err != nil {
			t.Error(err)
			return
		}
		res := &server.MemAccResolver{}
		_ = res.Store(apub, ajwt)
		_ = res.Store(spub, sjwt)
		o.TrustedOperators = []*jwt.OperatorClaims{oclaims}
		o.AccountResolver = res
		o.SystemAccount = spub
	}
}

func TestAuthValidate(t *testing.T) {
	seed, _ := userSeed(t)
	for _, tc := range []struct {
		name string
		cfg  engine.Config
	}{
		{"two ways", engine.Config{URLs: []string{"nats://x"}, Token: "t", User: "u", Password: "p"}},
		{"password without user", engine.Config{URLs: []string{"nats://x"}, Password: "p"}},
		{"user without password", engine.Config{URLs: []string{"nats://x"}, User: "u"}},
		{"cert without key", engine.Config{URLs: []string{"nats://x"}, TLSCert: seed}},
		{"missing file", engine.Config{URLs: []string{"nats://x"}, CredsFile: "/nonexistent/creds"}},
		{"not a seed", engine.Config{URLs: []string{"nats://x"}, NkeyFile: "/etc/hostname"}},
		{"creds with listen", engine.Config{Listen: "127.0.0.1:0", CredsFile: seed}},
		{"credentials without any network", engine.Config{Token: "t"}},
		{"client CA on listen without cert", engine.Config{Listen: "127.0.0.1:0", TLSCA: seed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestIncompatibleServersRefused: a server too old for message schedules
// and atomic batches (seen as 2.11 here: the proxy in front of a real
// server rewrites its INFO), one that drops a stream setting it does not
// know, and one with a tiny max_payload are refused with ErrIncompatible
// and a message that says what is missing.
func TestIncompatibleServersRefused(t *testing.T) {
	old := clustertest.Start(t, clustertest.Options{Size: 1,
		Rewrite: []clustertest.Rewrite{{Old: `"version":"` + server.VERSION + `"`, New: `"version":"2.11.9"`}}})
	_, err := startErr(engine.Config{URLs: old.URLs()})
	if !errors.Is(err, engine.ErrIncompatible) || !strings.Contains(err.Error(), "2.11.9") || !strings.Contains(err.Error(), engine.MinServerVersion) {
		t.Fatalf("2.11 server: %v", err)
	}
	small := clustertest.Start(t, clustertest.Options{Size: 1, MaxPayload: 16 << 10})
	if _, err := startErr(engine.Config{URLs: small.URLs()}); !errors.Is(err, engine.ErrIncompatible) || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("16 KiB max_payload: %v", err)
	}
	dropping := clustertest.Start(t, clustertest.Options{Size: 1,
		Rewrite: []clustertest.Rewrite{{Old: `"allow_msg_schedules":true`, New: `"allow_msg_schedulez":true`}}})
	e, err := startErr(engine.Config{URLs: dropping.URLs()})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = e.EnsureStream(ctx, jetstreamConfig("SCHED", true))
	if !errors.Is(err, engine.ErrIncompatible) || !strings.Contains(err.Error(), "message schedules") {
		t.Fatalf("server that drops allow_msg_schedules: %v", err)
	}
	if _, err := e.EnsureStream(ctx, jetstreamConfig("PLAIN", false)); err != nil {
		t.Fatalf("a stream without schedules: %v", err)
	}
}

// TestMaxPayloadIsTheServers: the engine reads the server's max_payload
// and names it when a message is too large.
func TestMaxPayloadIsTheServers(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{Size: 1, MaxPayload: 128 << 10})
	e, err := startErr(engine.Config{URLs: cl.URLs()})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, e)
	if e.MaxPayload() != 128<<10 {
		t.Fatalf("MaxPayload %d", e.MaxPayload())
	}
	err = e.CheckSize(200 << 10)
	var tl *engine.TooLargeError
	if !errors.Is(err, engine.ErrTooLarge) || !errors.As(err, &tl) || tl.Limit != 128<<10 || !strings.Contains(err.Error(), "131072") {
		t.Fatalf("CheckSize: %v", err)
	}
	if err := e.CheckSize(1000); err != nil {
		t.Fatal(err)
	}
	emb := start(t, engine.Config{DataDir: t.TempDir()})
	defer stop(t, emb)
	if emb.MaxPayload() != 8<<20 {
		t.Fatalf("embedded MaxPayload %d, want 8 MiB", emb.MaxPayload())
	}
}

func jetstreamConfig(name string, schedules bool) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: name, Subjects: []string{strings.ToLower(name) + ".>"}, AllowMsgSchedules: schedules}
}

func nkeyOption(t *testing.T, seed string) nats.Option {
	t.Helper()
	o, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
