#!/usr/bin/env bash
# Runs every check and test of Plexus. It installs what the tests need when
# it is missing, so it works on a fresh machine. Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2

step() { printf '\n==> %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck $STATICCHECK_VERSION"
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...

# Extra system packages some tests need (a browser for the dashboard test,
# promtool for the monitoring tests).
if [ -f scripts/test-deps.sh ]; then
  step "test dependencies"
  bash scripts/test-deps.sh
fi

# The dashboard, monitoring and examples' tests must not skip themselves
# when the browser, promtool or PostgreSQL is missing.
export PLEXUS_REQUIRE_BROWSER=1
export PLEXUS_REQUIRE_PROMTOOL=1
export PLEXUS_REQUIRE_POSTGRES=1

step "go test -race"
go test -race -count=1 -timeout 12m ./...

# The container test (images, compose topology): installs and starts a
# docker engine when root; skipped with a message otherwise, unless
# PLEXUS_REQUIRE_DOCKER=1 (CI sets it).
step "container test (scripts/test-deploy.sh)"
./scripts/test-deploy.sh
