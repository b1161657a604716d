#!/bin/sh
# How `npm start` runs the server (the test and bench harness runs servers through this file too).
#
# Allocator (ALLOCATOR=auto, the default): on Linux, preload jemalloc when it is installed (Debian and
# Ubuntu: libjemalloc2). In the one-hour soak glibc's malloc kept the holes that uploads and media
# segments leave in its main arena, and RSS grew about 4.5 MB per 10 minutes while the JS heap stayed flat;
# with jemalloc it did not grow (docs/BENCHMARKS.md).
# ALLOCATOR=jemalloc refuses to start without it; ALLOCATOR=system keeps the C library's malloc. An
# LD_PRELOAD already set is left as it is.
#
# MALLOC_MMAP_THRESHOLD_ (glibc only) fixes the mmap threshold at 128 KiB, so large Buffers are their own
# mappings and go back to the system when freed (docs/CONFIGURATION.md).
#
# NODE_FLAGS: node's own flags (default --initial-old-space-size=128, which V8 refuses in NODE_OPTIONS); set
# and empty, none.
set -eu
cd "$(dirname "$0")/.."

jemalloc=''
if [ "$(uname -s)" = Linux ]; then
  for lib in /usr/lib/*-linux-gnu/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2 /usr/lib/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2; do
    if [ -r "$lib" ]; then jemalloc=$lib; break; fi
  done
fi

case "${ALLOCATOR:-auto}" in
  auto) ;;
  jemalloc)
    if [ -z "$jemalloc" ]; then
      echo "livepack: ALLOCATOR=jemalloc, but no libjemalloc.so.2 was found (Debian/Ubuntu: apt-get install libjemalloc2)" >&2
      exit 1
    fi ;;
  system) jemalloc='' ;;
  *)
    echo "livepack: ALLOCATOR must be auto, jemalloc or system (got '${ALLOCATOR}')" >&2
    exit 1 ;;
esac
if [ -n "$jemalloc" ] && [ -z "${LD_PRELOAD:-}" ]; then
  export LD_PRELOAD="$jemalloc"
fi

export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"
# shellcheck disable=SC2086 # NODE_FLAGS is a list of flags, split on spaces
exec node ${NODE_FLAGS---initial-old-space-size=128} --import tsx src/main.ts "$@"
