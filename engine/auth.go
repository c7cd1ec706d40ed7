package engine

import (
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/plexushq/plexus/internal/secretfile"
)

// The embedded engine's generated credentials (see Config.Listen).
const (
	// ListenUser is the user of the generated credentials.
	ListenUser = "plexus"
	// PasswordFile holds the generated password in the data dir (0600).
	PasswordFile = "nats-password"
)

// validateAuth checks the credentials and TLS settings: one way to
// authenticate at most, files that exist, certificate and key together.
func (c Config) validateAuth() error {
	ways := 0
	for _, set := range []bool{c.CredsFile != "", c.NkeyFile != "", c.User != "", c.Token != ""} {
		if set {
			ways++
		}
	}
	switch {
	case ways > 1:
		return errors.New("engine: give one of --nats-creds, --nats-nkey, --nats-user/--nats-password or --nats-token")
	case c.Password != "" && c.User == "":
		return errors.New("engine: --nats-password needs --nats-user")
	case c.User != "" && c.Password == "":
		return errors.New("engine: --nats-user needs --nats-password")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("engine: --nats-tls-cert and --nats-tls-key go together")
	case len(c.URLs) == 0 && c.Listen == "" && (ways > 0 || c.TLSCert != "" || c.TLSCA != ""):
		return errors.New("engine: credentials and TLS settings apply to --nats or --nats-listen; the embedded engine without a listener has no network port")
	case len(c.URLs) == 0 && c.CredsFile != "":
		return errors.New("engine: --nats-creds is for an external engine (operator/JWT mode); with --nats-listen use --nats-user/--nats-password, --nats-token or --nats-nkey")
	case c.Listen != "" && c.TLSCA != "" && c.TLSCert == "":
		return errors.New("engine: --nats-tls-ca with --nats-listen verifies client certificates and needs the server's --nats-tls-cert and --nats-tls-key")
	}
	for flag, path := range map[string]string{"--nats-creds": c.CredsFile, "--nats-nkey": c.NkeyFile,
		"--nats-tls-ca": c.TLSCA, "--nats-tls-cert": c.TLSCert, "--nats-tls-key": c.TLSKey} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("engine: %s: %w", flag, err)
		}
	}
	if c.NkeyFile != "" {
		if _, err := readNkey(c.NkeyFile); err != nil {
			return err
		}
	}
	return nil
}

// readNkey reads a user nkey seed file and returns its key pair.
func readNkey(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("engine: --nats-nkey: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, fmt.Errorf("engine: --nats-nkey %s: not an nkey seed: %w", path, err)
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("engine: --nats-nkey %s: want a user seed (SU...)", path)
	}
	return kp, nil
}

// secureListener makes the embedded server's listener require
// authentication (the given user/password, token or nkey, else a generated
// password stored in the data dir) and, with a certificate, TLS. It
// returns the options the in-process connection authenticates with.
func (e *Engine) secureListener(opts *server.Options) ([]nats.Option, error) {
	c := e.cfg
	if c.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.TLSCert, KeyFile: c.TLSKey,
			CaFile: c.TLSCA, Verify: c.TLSCA != ""})
		if err != nil {
			return nil, fmt.Errorf("engine: listener TLS: %w", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = tc, true, c.TLSCA != "", 2
	}
	switch {
	case c.Token != "":
		opts.Authorization = c.Token
		return []nats.Option{nats.Token(c.Token)}, nil
	case c.NkeyFile != "":
		kp, err := readNkey(c.NkeyFile)
		if err != nil {
			return nil, err
		}
		pub, _ := kp.PublicKey()
		opts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
		o, err := nats.NkeyOptionFromSeed(c.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("engine: --nats-nkey: %w", err)
		}
		return []nats.Option{o}, nil
	case c.User != "":
		opts.Username, opts.Password = c.User, c.Password
		return []nats.Option{nats.UserInfo(c.User, c.Password)}, nil
	}
	pw, path, created, err := secretfile.LoadOrCreate(c.DataDir, PasswordFile, "", "engine password")
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if created {
		c.Logger.Info("generated credentials for the engine listener; other nodes connect with them",
			"user", ListenUser, "passwordFile", path,
			"flags", "--nats-user "+ListenUser+" --nats-password \"$(cat "+path+")\"")
	}
	opts.Username, opts.Password = ListenUser, pw
	return []nats.Option{nats.UserInfo(ListenUser, pw)}, nil
}

// clientAuth is the external connection's credentials and TLS.
func (c Config) clientAuth() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NkeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("engine: --nats-nkey: %w", err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}
