#!/usr/bin/env bash
# Build the Space image from the Dockerfile with buildah (no Docker daemon needed), run the
# image's own CMD in it, check /_stcore/health and the image's HEALTHCHECK, open the app in
# headless Chromium and save a screenshot, train a tiny run in the image, then stop it.
# `make space-image` runs this; it needs root (buildah, debootstrap). REUSE_IMAGE=1 serves the
# image built before instead of rebuilding it.
#
# Docker Hub and PyTorch's CPU index may be out of reach, so by default the base image is
# made here from Debian's packages (bookworm: Python 3.11) and torch comes from PyPI; both are
# the Dockerfile's build arguments, whose own defaults stay what a Space uses.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-python3}                          # a Python with Playwright (the venv's)
BASE_IMAGE=${BASE_IMAGE:-localhost/tinyvit-space-base:bookworm}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://pypi.org/simple}
IMAGE=${IMAGE:-localhost/tinyvit-lab:space}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=${WORK:-/var/tmp/tinyvit-space}
PORT=${PORT:-8501}
SCREENSHOT=${SCREENSHOT:-$REPO/docs/screenshots/space-image.png}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-180}
# chroot isolation: podman/buildah's default (OCI runtime) fails on these machines' cgroups.
ISOLATION=(--isolation chroot)

say() { printf '\n== %s\n' "$*"; }
# The image's Docker config (Cmd, Healthcheck, ...) as JSON.
image_config() {
  buildah inspect --type image "$IMAGE" | "$PY" -c "import json, sys; print(json.dumps(json.load(sys.stdin)['Docker']['config']))"
}
mkdir -p "$WORK"

# -- 1. the base image ------------------------------------------------------------------------
# A stand-in for python:3.11-slim: Debian's python3 and pip, `python` on PATH, and pip allowed
# to install into it (python:3.11-slim's Python is not Debian's, so nothing marks it as
# externally managed). It trusts what this machine trusts, so pip reaches PyPI through any
# TLS-inspecting proxy the machine is configured for.
make_base() {
  local rootfs=$WORK/rootfs ctr
  say "making $BASE_IMAGE with debootstrap (Debian bookworm)"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-pip,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$WORK/base.tar" .
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$WORK/base.tar" / >/dev/null
  buildah config --env LANG=C.UTF-8 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd python3 "$ctr"
  buildah commit --quiet "$ctr" "$BASE_IMAGE" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$rootfs" "$WORK/base.tar"
}

base_s=""
if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base image $BASE_IMAGE is there"
else
  start=$(date +%s); make_base; base_s=$(( $(date +%s) - start ))
fi

# -- 2. the Dockerfile ------------------------------------------------------------------------
build_s=""
if [ "${REUSE_IMAGE:-0}" = 1 ] && buildah inspect --type image "$IMAGE" >/dev/null 2>&1; then
  say "REUSE_IMAGE=1: serving the $IMAGE built before"
else
  say "building $IMAGE from the Dockerfile (BASE_IMAGE=$BASE_IMAGE, TORCH_INDEX_URL=$TORCH_INDEX_URL)"
  old_id=$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)
  start=$(date +%s)
  # --format docker keeps the HEALTHCHECK (the OCI format has none); --layers=false commits once.
  buildah bud "${ISOLATION[@]}" --format docker --layers=false \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg TORCH_INDEX_URL="$TORCH_INDEX_URL" \
    -t "$IMAGE" "$REPO" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
  build_s=$(( $(date +%s) - start ))
  # The previous build, now untagged, would keep its gigabytes.
  [ -n "$old_id" ] && buildah rmi "$old_id" >/dev/null 2>&1 || true
fi

# -- 3. run the image's CMD -------------------------------------------------------------------
ctr=""; run_pid=""
cleanup() {
  # The server runs in its own process group (setsid): end that group, then the container.
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
    kill -TERM -- "-$run_pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$run_pid" 2>/dev/null || true
  fi
  if [ -n "$ctr" ]; then buildah umount "$ctr" >/dev/null 2>&1 || true; buildah rm "$ctr" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

ctr=$(buildah from "$IMAGE")
mnt=$(buildah mount "$ctr")
size_bytes=$(du -sb --one-file-system "$mnt" | cut -f1)
cuda_bytes=$(du -scb "$mnt"/home/user/.local/lib/python3*/site-packages/{nvidia,triton} 2>/dev/null | tail -1 | cut -f1)
test -s "$mnt/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz" \
  || { echo "error: Debian's Fashion-MNIST is not in the image"; exit 1; }

# Port: a Space reaches the container on app_port (8501). Without a network namespace
# (chroot isolation) the container shares this machine's ports, so when 8501 is taken the
# CMD's --server.port value is the one thing changed.
port_free() { ! "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$1))!=0)"; }
if ! port_free "$PORT"; then
  taken=$PORT
  PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  echo "port $taken is in use here: serving on $PORT instead"
fi
# The CMD exactly as built into the image, one word a line.
cmd_words=$(image_config | "$PY" -c "
import json, sys
cmd = json.load(sys.stdin)['Cmd']
cmd[cmd.index('--server.port') + 1] = '$PORT'
print('\n'.join(cmd))")
mapfile -t cmd <<<"$cmd_words"
say "running the image's CMD: ${cmd[*]}"
# SPACE_ID and SPACE_AUTHOR_NAME are set as a Space sets them, so the app shows its Space mode.
setsid buildah run "${ISOLATION[@]}" --env SPACE_ID=local/tinyvit-lab --env SPACE_AUTHOR_NAME=local \
  "$ctr" -- "${cmd[@]}" >"$WORK/serve.log" 2>&1 &
run_pid=$!

url=http://127.0.0.1:$PORT
for i in $(seq "$HEALTH_TIMEOUT"); do
  if "$PY" -c "import sys, urllib.request as u; sys.exit(u.urlopen('$url/_stcore/health', timeout=2).read() != b'ok')" \
       2>/dev/null; then break; fi
  kill -0 "$run_pid" 2>/dev/null || { echo "error: the app exited"; tail -30 "$WORK/serve.log"; exit 1; }
  [ "$i" = "$HEALTH_TIMEOUT" ] && { echo "error: no answer from $url/_stcore/health in ${HEALTH_TIMEOUT} s"; exit 1; }
  sleep 1
done
say "$url/_stcore/health answered ok"
if [ "$PORT" = 8501 ]; then
  # The image's own HEALTHCHECK command, run inside it (it names port 8501).
  hc_words=$(image_config | "$PY" -c "
import json, sys
test = json.load(sys.stdin)['Healthcheck']['Test']
print('\n'.join(['sh', '-c', test[1]] if test[0] == 'CMD-SHELL' else test[1:]))")
  mapfile -t hc <<<"$hc_words"
  buildah run "${ISOLATION[@]}" "$ctr" -- "${hc[@]}" || { echo "error: the image's HEALTHCHECK failed"; exit 1; }
  echo "the image's HEALTHCHECK passed"
fi

# -- 4. the app in headless Chromium ----------------------------------------------------------
mkdir -p "$(dirname "$SCREENSHOT")"
"$PY" "$REPO/tools/space_screenshot.py" "$url" "$SCREENSHOT"

# -- 5. training in the image ----------------------------------------------------------------
# A tiny run as the Space's user, into the image's runs folder: torch, the trainer and a
# writable home work there.
say "a tiny training run in the image"
buildah run "${ISOLATION[@]}" "$ctr" -- python train.py --dataset digits --subset 20 --epochs 1 --threads 1 \
  --name space-image-check --quiet >"$WORK/train.log" 2>&1 || { tail -20 "$WORK/train.log"; exit 1; }
test -s "$mnt/home/user/app/runs/space-image-check/test_metrics.json" \
  || { echo "error: the run in the image wrote no test_metrics.json"; tail -20 "$WORK/train.log"; exit 1; }
echo "trained: runs/space-image-check in the image has its test metrics"

say "done"
summary="image $IMAGE: $(numfmt --to=si "$size_bytes")B unpacked, of which CUDA libraries and triton $(numfmt --to=si "${cuda_bytes:-0}")B"
[ -n "$base_s" ] && summary+="; base image made in ${base_s} s"
[ -n "$build_s" ] && summary+="; Dockerfile built in ${build_s} s"
echo "$summary" | tee "$WORK/summary.txt"
echo "screenshot: $SCREENSHOT"
