#!/usr/bin/env bash
# `make image-test`: inside the built image, as uid 1000 (the image's user), run `avel doctor`
# and a small `avel demo` writing to a host directory mounted at /work, then check on the host
# that the files are there and the demo printed its accuracy table.
#   docker/image-test.sh TOOL IMAGE [HOSTDIR]     TOOL: docker | podman | buildah
# Exit 0 when every check passed; the outputs stay in HOSTDIR (default: a new temp dir).
set -euo pipefail

TOOL=${1:?usage: image-test.sh docker|podman|buildah IMAGE [HOSTDIR]}
IMAGE=${2:?usage: image-test.sh docker|podman|buildah IMAGE [HOSTDIR]}
HOSTDIR=${3:-$(mktemp -d "${TMPDIR:-/tmp}/avel-image-test.XXXXXX")}
mkdir -p "$HOSTDIR"
# the image's user must be able to write there, as on a cluster's work volume
if [[ $(id -u) == 0 ]]; then chown 1000:1000 "$HOSTDIR"; else chmod 0777 "$HOSTDIR"; fi

# buildah: one working container for both commands, made here (not inside in_image, which
# runs in a pipeline's subshell) so that the trap removes it
CTR=""
if [[ $TOOL == buildah ]]; then CTR=$(buildah from --pull-never "$IMAGE"); fi
cleanup() { if [[ -n "$CTR" ]]; then buildah rm "$CTR" >/dev/null; fi; }
trap cleanup EXIT

# `avel ARGS...` in the image as uid 1000 with HOSTDIR at /work (one bind only: buildah 1.28,
# Debian bookworm's, applies neither bind of a `run` given two, e.g. /work and /cache)
in_image() {
  case "$TOOL" in
    docker|podman)
      "$TOOL" run --rm --user 1000:1000 -v "$HOSTDIR:/work" "$IMAGE" "$@" ;;
    buildah)
      buildah run --isolation chroot --user 1000:1000 -v "$HOSTDIR:/work" "$CTR" avel "$@" ;;
    *) echo "image-test.sh: unknown tool $TOOL" >&2; return 2 ;;
  esac
}

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

echo "== avel doctor (as uid 1000) =="
set +e
in_image doctor --workdir /work/doctor-check 2>&1 | tee "$HOSTDIR/doctor.txt"
doctor_rc=${PIPESTATUS[0]}
set -e
echo "doctor exit code: $doctor_rc"
[[ $doctor_rc == 0 ]] || fail "avel doctor exited $doctor_rc (a blocker; see $HOSTDIR/doctor.txt)"
grep -qE "^ok +js runtime +deno" "$HOSTDIR/doctor.txt" || fail "doctor found no deno for yt-dlp"
grep -qE "^ok +weights cache +/cache writable" "$HOSTDIR/doctor.txt" || fail "/cache not writable by uid 1000"

# 8 clips of 2 classes: the fewest the demo takes (4 a class: 2 train, 1 val, 1 test)
CLIPS=8
echo "== avel demo --clips $CLIPS --classes 2 (as uid 1000) =="
set +e
in_image demo --workdir /work/demo --clips $CLIPS --classes 2 --epochs 3 2>"$HOSTDIR/demo.log" \
  | tee "$HOSTDIR/demo.txt"
demo_rc=${PIPESTATUS[0]}
set -e
echo "demo exit code: $demo_rc"
[[ $demo_rc == 0 ]] || { tail -20 "$HOSTDIR/demo.log"; fail "avel demo exited $demo_rc"; }
grep -qE "^cpsp +[0-9.]+ +[0-9.]+" "$HOSTDIR/demo.txt" || fail "demo printed no cpsp accuracy"
for f in demo/avel.yaml demo/manifest.parquet demo/preview.mp4 demo/summary.json \
         demo/features/vggish/00000-of-00001.h5 demo/features/vgg19/00000-of-00001.h5 \
         demo/train/ave-fully__cpsp/curves.png demo/train/ave-fully__cpsp/checkpoints/best.pt; do
  [[ -s "$HOSTDIR/$f" ]] || fail "missing on the host: $HOSTDIR/$f"
done
# every clip went through every stage (the summary the demo wrote on the host)
for key in clips downloaded cut vggish vgg19; do
  grep -qE "\"$key\": $CLIPS,?$" "$HOSTDIR/demo/summary.json" \
    || fail "summary.json: $key is not $CLIPS"
done
owner=$(stat -c %u "$HOSTDIR/demo/manifest.parquet" 2>/dev/null || echo none)
[[ $owner == 1000 || $TOOL == podman ]] || fail "outputs owned by uid $owner, not 1000"

if [[ $failures == 0 ]]; then
  echo "image-test: passed (outputs in $HOSTDIR)"
else
  echo "image-test: $failures check(s) failed (outputs in $HOSTDIR)"
  exit 1
fi
