#!/usr/bin/env bash
# Installs the system packages some tests need, when they are missing:
# Debian's chromium for the dashboard's browser test, Debian's prometheus
# for promtool (metrics lint, alert rule unit tests, dashboard queries),
# and postgresql for the examples' saga and read-model tests (they start
# their own server; the package's cluster service is stopped).
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing ${missing[*]} and there is no apt-get: install them by hand" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
for pkg in "${missing[@]}"; do
  case $pkg in
    prometheus) $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null ;; # promtool; the server is not started
    postgresql)
      $sudo apt-get install -y -qq postgresql >/dev/null
      $sudo service postgresql stop >/dev/null 2>&1 || true ;; # the tests start their own server
    *) $sudo apt-get install -y -qq "$pkg" >/dev/null ;;
  esac
done
command -v chromium promtool
compgen -G '/usr/lib/postgresql/*/bin/postgres'
