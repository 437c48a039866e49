#!/bin/sh
# Download the TFLite C headers and the header-only flatbuffers/flexbuffers library as
# Debian packages and unpack them into a build folder, without installing anything.
#
#   converters/fetch_tflite_headers.sh [DEST]        (default DEST: build/tflite-headers)
#
# - libtensorflow-lite-dev 2.14.1 comes from Debian sid (bookworm does not package it);
# - libflatbuffers-dev 2.0.8 comes from Debian bookworm.
# apt-get runs with its own sources list, package lists and cache under DEST, so the
# machine's apt configuration and state are left untouched. Needs apt-get and dpkg-deb
# (any Debian or Ubuntu). Prints the include folder on success (last line of output).
set -eu

DEST=${1:-build/tflite-headers}
MIRROR=${DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
    # The mirror the machine already uses (deb822 or one-line format), else the CDN.
    MIRROR=$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -o -E 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
MIRROR=${MIRROR%/}

for tool in apt-get dpkg-deb; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "fetch_tflite_headers: '$tool' not found. On a non-Debian system get the TFLite 2.14+ headers" \
             "(a tensorflow source tree or your distribution's tensorflow-lite dev package) and flatbuffers 2.x," \
             "then set TFLITE_INCLUDE_DIR (and FLATBUFFERS_INCLUDE_DIR) to their include folders." >&2
        exit 1
    fi
done

mkdir -p "$DEST/apt/lists/partial" "$DEST/apt/cache/archives/partial" "$DEST/debs" "$DEST/root"
DEST=$(cd "$DEST" && pwd)
cat > "$DEST/apt/sources.list" <<LIST
deb $MIRROR sid main
deb $MIRROR bookworm main
LIST

apt_private() {
    apt-get -q -o Dir::Etc::sourcelist="$DEST/apt/sources.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$DEST/apt/lists" -o Dir::Cache="$DEST/apt/cache" \
        -o APT::Sandbox::User=root "$@"
}

apt_private update >&2
(cd "$DEST/debs" && apt_private download libtensorflow-lite-dev/sid libflatbuffers-dev/bookworm >&2)
for deb in "$DEST"/debs/*.deb; do
    dpkg-deb -x "$deb" "$DEST/root"
done
test -f "$DEST/root/usr/include/tensorflow/lite/core/c/common.h"
test -f "$DEST/root/usr/include/flatbuffers/flexbuffers.h"
echo "$DEST/root/usr/include"
