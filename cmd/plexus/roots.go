package main

// Root certificates for outbound TLS (OTLP over https, an external NATS
// with TLS) where the system has none, as in the scratch container image.
// They are used only when no system roots load: SSL_CERT_FILE or
// SSL_CERT_DIR pointing at a bundle, or the host's own store, take
// precedence (docs/deploy.md).
import _ "golang.org/x/crypto/x509roots/fallback"
