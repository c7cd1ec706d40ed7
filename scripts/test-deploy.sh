#!/usr/bin/env bash
# The container test: builds the images (scripts/image.sh), brings the core
# profile of deploy/docker-compose.yml up and runs the checks of
# deploy/*_test.go (go test -tags deploy ./deploy/), then removes every
# container, network, volume and image it made, and stops dockerd if it
# started it. Only loopback ports are published.
#
# Docker: when `docker info` fails and we are root, Debian's docker.io and
# docker-compose are installed (if missing) and dockerd is started for the
# run. Otherwise the test is skipped with a message, except when
# PLEXUS_REQUIRE_DOCKER=1 (CI), where it fails.
#
# Usage: ./scripts/test-deploy.sh        (bounded: about 10 minutes at most)
set -euo pipefail
cd "$(dirname "$0")/.."

require=${PLEXUS_REQUIRE_DOCKER:-0}
skip() {
  if [ "$require" = 1 ]; then
    echo "test-deploy: FAIL: $* (PLEXUS_REQUIRE_DOCKER=1)" >&2
    exit 1
  fi
  echo "test-deploy: SKIPPED: $*" >&2
  exit 0
}

# One run at a time on a machine: runs share the engine, and the run that
# started dockerd stops it at its end.
exec 9>/tmp/plexus-test-deploy.lock
if ! flock -w 900 9; then
  echo "test-deploy: FAIL: another run held /tmp/plexus-test-deploy.lock for 15 minutes" >&2
  exit 1
fi

compose=docker-compose started_dockerd="" dockerd_log="" tag="deploytest-$$-$(date +%s)" run="plexusdt$$"
cleanup() {
  local rc=$?
  set +e
  # What the Go test removes itself, also when it was interrupted.
  if docker info >/dev/null 2>&1; then
    PLEXUS_ADMIN_TOKEN=cleanup $compose -p "$run" -f deploy/docker-compose.yml down -v --remove-orphans -t 5 >/dev/null 2>&1
    docker rm -f -v "$run-image" >/dev/null 2>&1
    docker volume rm "$run-image-data" >/dev/null 2>&1
  fi
  for img in $(docker images -q --filter "reference=plexus*:$tag" 2>/dev/null | sort -u); do
    docker rmi -f "$img" >/dev/null 2>&1
  done
  if [ -n "$started_dockerd" ]; then
    echo "test-deploy: stopping the dockerd it started (pid $started_dockerd)" >&2
    kill "$started_dockerd" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.2; done
  fi
  # The engine's log is kept only when the run failed.
  if [ "$rc" -eq 0 ] && [ -n "$dockerd_log" ]; then rm -f "$dockerd_log"; fi
}
trap cleanup EXIT

install_docker() {
  local pkgs=()
  command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    pkgs+=(docker-compose)
  fi
  [ ${#pkgs[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || skip "no docker and no apt-get to install ${pkgs[*]}"
  echo "test-deploy: installing ${pkgs[*]} from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

start_dockerd() {
  local log pidfile
  log=$(mktemp /tmp/plexus-dockerd.XXXXXX.log)
  pidfile=$(mktemp /tmp/plexus-dockerd.XXXXXX.pid)
  dockerd_log=$log
  echo "test-deploy: starting dockerd (log $log)" >&2
  # In a session of its own: a Ctrl-C of this script must not stop the
  # engine before the cleanup has removed what the run made.
  setsid dockerd --pidfile "$pidfile" >"$log" 2>&1 </dev/null &
  for _ in $(seq 1 150); do
    if docker info >/dev/null 2>&1; then
      started_dockerd=$(cat "$pidfile")
      return 0
    fi
    sleep 0.2
  done
  started_dockerd=$(cat "$pidfile" 2>/dev/null)
  tail -20 "$log" >&2
  return 1
}

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || skip "no docker engine reachable and not root (cannot install or start one)"
  install_docker
  command -v docker >/dev/null 2>&1 || skip "docker still missing after installing docker.io"
  start_dockerd || skip "dockerd did not start"
else
  install_docker
fi

compose="docker compose"
docker compose version >/dev/null 2>&1 || compose=docker-compose
export PLEXUS_COMPOSE=$compose PLEXUS_DEPLOY_TAG=$tag PLEXUS_DEPLOY_PREFIX=plexus PLEXUS_DEPLOY_RUN=$run
echo "test-deploy: $(docker version --format 'engine {{.Server.Version}}'), $($compose version --short 2>/dev/null || $compose version | head -1)" >&2

echo "test-deploy: building images :$tag" >&2
timeout --foreground 600 scripts/image.sh --examples --tag "$tag" --version "deploytest"

go vet -tags deploy ./deploy/
out=$(mktemp)
status=0
timeout --foreground 900 go test -tags deploy -count=1 -timeout 12m -v -run 'TestImage|TestCompose' ./deploy/ >"$out" 2>&1 || status=$?
grep -E '^ *(--- |PASS|FAIL|ok )' "$out" || true
if [ "$status" -ne 0 ]; then
  cat "$out"
  exit "$status"
fi
echo
echo "test-deploy: measured"
sed -n 's/^ *[a-z_]*_test.go:[0-9]*: REPORT /  /p' "$out"
rm -f "$out"
