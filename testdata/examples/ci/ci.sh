#!/bin/sh
# build -> run the tests inside the image -> push only if they pass, as a CI job would:
#   IMAGE=registry.example.com/team/app:1 BASE=oci-layout:///path/to/base:latest sh ci.sh
# KILN (default: kiln) is the command; KILN_FLAGS go to every kiln call (e.g. --cache-dir DIR),
# PUSH_FLAGS to kiln push (e.g. --insecure-registry HOST), BUILD_FLAGS to kiln build.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
KILN=${KILN:-kiln}
: "${IMAGE:?set IMAGE to the reference to push}"
: "${BASE:?set BASE to a base image with a shell (a stored name, docker-image://REF or oci-layout://DIR:TAG)}"
case "$BASE" in *://*) base_ctx=$BASE ;; *) base_ctx=docker-image://$BASE ;; esac
# shellcheck disable=SC2086
$KILN build ${KILN_FLAGS:-} ${BUILD_FLAGS:-} --progress quiet --load -t "$IMAGE" --build-context "base=$base_ctx" "$here"
# shellcheck disable=SC2086
if ! $KILN run ${KILN_FLAGS:-} --entrypoint /app/test.sh "$IMAGE"; then
  echo "ci: tests failed in $IMAGE: not pushed" >&2
  exit 1
fi
# shellcheck disable=SC2086
$KILN push ${KILN_FLAGS:-} ${PUSH_FLAGS:-} -q "$IMAGE"
