package app

// Root certificates for outbound TLS where the system has none (the
// scratch image, deploy/Dockerfile.example); SSL_CERT_FILE or the host's
// store take precedence. Every example command imports this package.
import _ "golang.org/x/crypto/x509roots/fallback"
