#!/usr/bin/env bash
# Builds the Plexus container image (deploy/Dockerfile) and, with
# --examples, one image per example service (deploy/Dockerfile.example).
#
# Nothing is pulled: each binary is compiled here as a static Linux binary
# (CGO_ENABLED=0, -trimpath, version stamped with -ldflags) and copied into
# an image FROM scratch. Needs Go and a docker engine.
#
#   scripts/image.sh                         plexus:<version>
#   scripts/image.sh --examples              plus plexus-user-service:<version>, …
#   scripts/image.sh --tag test --examples   every image tagged :test
#
# Options:
#   --tag TAG        image tag (default: the version)
#   --version V      version stamped into the binaries (default: git describe)
#   --examples       also build the example services' images
#   --prefix P       image name prefix (default: plexus; examples are P-<name>)
#   --arch ARCH      GOARCH of the binaries (default: the docker engine's)
#   --bin-dir DIR    keep the binaries in DIR (default: a temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=(user-service order-service notification-service order-saga order-projector)

tag="" version="" examples=0 prefix=plexus arch="" bindir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --examples) examples=1; shift ;;
    --prefix) prefix=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --bin-dir) bindir=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$version" ]; then
  version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
fi
tag=${tag:-$version}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ -z "$arch" ]; then
  arch=$(docker version --format '{{.Server.Arch}}' 2>/dev/null || go env GOARCH)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$bindir" ]; then bindir=$work/bin; fi
mkdir -p "$bindir"

gobuild() { # gobuild OUT PKG LDFLAGS
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "-s -w $3" -o "$1" "$2"
}

# dockerbuild DOCKERFILE CONTEXT IMAGE [BUILD-ARG…]
dockerbuild() {
  local file=$1 ctx=$2 image=$3; shift 3
  local args=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created")
  for a in "$@"; do args+=(--build-arg "$a"); done
  if ! docker build -q -f "$file" -t "$image" "${args[@]}" "$ctx" >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    return 1
  fi
  printf '%s\t%s\n' "$image" "$(docker image inspect -f '{{.Size}}' "$image") bytes"
}

echo "building binaries (linux/$arch, version $version)" >&2
gobuild "$bindir/plexus" ./cmd/plexus "-X main.version=$version"
if [ "$examples" = 1 ]; then
  for ex in "${EXAMPLES[@]}"; do
    gobuild "$bindir/$ex" "./examples/$ex" "-X github.com/plexushq/plexus/examples/internal/app.Version=$version"
  done
fi

ctx=$work/plexus
mkdir -p "$ctx/data"
cp "$bindir/plexus" "$ctx/plexus"
dockerbuild deploy/Dockerfile "$ctx" "$prefix:$tag"

if [ "$examples" = 1 ]; then
  for ex in "${EXAMPLES[@]}"; do
    ctx=$work/$ex
    mkdir -p "$ctx"
    cp "$bindir/$ex" "$ctx/service"
    dockerbuild deploy/Dockerfile.example "$ctx" "$prefix-$ex:$tag" "EXAMPLE=$ex"
  done
fi
