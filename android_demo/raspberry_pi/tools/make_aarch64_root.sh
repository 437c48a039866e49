#!/bin/sh
# Build an aarch64 Python 3.11 + the Pi app's wheels under build/, for running the Pi app
# under qemu-user emulation on an x86 Debian machine (`make pi-check`).
#
#   android_demo/raspberry_pi/tools/make_aarch64_root.sh [DEST]     (default DEST: build/pi-aarch64)
#
# What it does (each step skipped when its result is already there, so the heavy
# downloads happen once):
#   1. DEST/root: Debian bookworm's arm64 python3.11 and the packages it depends on,
#      downloaded with apt-get (own sources list, package lists and cache under DEST: the
#      machine's apt state is untouched) and unpacked with dpkg-deb -x, nothing installed.
#   2. DEST/site: the aarch64 wheels of the Pi app's requirements (ai-edge-litert, numpy,
#      pillow); DEST/site-tflite-runtime: the fallback runtime (tflite-runtime 2.14,
#      numpy<2, pillow). Downloaded by the host's pip with --platform/--only-binary and
#      installed with --target (no pip runs under emulation).
#   3. DEST/root/proc/cpuinfo: a Raspberry Pi 4's, read by the emulated programs (see below).
# Run the result with:
#   QEMU_CPU=cortex-a72 qemu-aarch64-static -L DEST/root DEST/root/usr/bin/python3.11   (PYTHONPATH=DEST/site or DEST/site-tflite-runtime)
# Needs: apt-get, dpkg-deb, a host python3 with pip, and qemu-user-static to run.
set -eu

DEST=${1:-build/pi-aarch64}
HOST_PYTHON=${HOST_PYTHON:-python3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
REQUIREMENTS="$HERE/requirements.txt"
MIRROR=${DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
    MIRROR=$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -o -E 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
MIRROR=${MIRROR%/}

mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)

if [ ! -f "$DEST/root/.complete" ]; then
    mkdir -p "$DEST/apt/lists/partial" "$DEST/apt/cache/archives/partial" "$DEST/debs" "$DEST/root"
    echo "deb [arch=arm64] $MIRROR bookworm main" > "$DEST/apt/sources.list"
    apt_arm64() {
        apt-get -q -o Dir::Etc::sourcelist="$DEST/apt/sources.list" -o Dir::Etc::sourceparts=- \
            -o Dir::State::Lists="$DEST/apt/lists" -o Dir::Cache="$DEST/apt/cache" \
            -o Dir::State::status=/dev/null -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
            -o APT::Sandbox::User=root "$@"
    }
    apt_arm64 update >&2
    # The dependency closure of python3.11 and of the C++ runtime the wheels link to
    # (Depends and Pre-Depends only).
    PACKAGES=$(apt-cache -o Dir::Etc::sourcelist="$DEST/apt/sources.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$DEST/apt/lists" -o Dir::Cache="$DEST/apt/cache" -o Dir::State::status=/dev/null \
        -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
        depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
        python3.11 libstdc++6 libgcc-s1 libffi8 zlib1g libexpat1 \
        | grep -E '^[a-z0-9]' | grep -v -E '^(debconf|perl-base|dpkg)' | sort -u)
    (cd "$DEST/debs" && apt_arm64 download $PACKAGES >&2)
    for deb in "$DEST"/debs/*.deb; do
        dpkg-deb -x "$deb" "$DEST/root"
    done
    test -x "$DEST/root/usr/bin/python3.11"
    touch "$DEST/root/.complete"
fi

# 3. DEST/root/proc/cpuinfo: a Raspberry Pi 4's (4 x Cortex-A72, part 0xd08), one entry per host CPU.
#    qemu-user looks a path up under its -L prefix first, so the emulated programs read this file,
#    not the x86 host's /proc/cpuinfo. Without it ai-edge-litert crashes (SIGSEGV, address 0x8)
#    creating any interpreter: its CPU detection (the cpuinfo library, used by XNNPACK and ruy)
#    parses /proc/cpuinfo, finds no ARM processor in the host's x86 one, and dereferences the
#    empty list (the last files read before the crash are the sysfs cache entries it reads next).
CPUS=$(getconf _NPROCESSORS_CONF 2>/dev/null || echo 4)
mkdir -p "$DEST/root/proc"
: > "$DEST/root/proc/cpuinfo.tmp"
i=0
while [ "$i" -lt "$CPUS" ]; do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i" >> "$DEST/root/proc/cpuinfo.tmp"
    i=$((i + 1))
done
printf 'Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n' >> "$DEST/root/proc/cpuinfo.tmp"
mv "$DEST/root/proc/cpuinfo.tmp" "$DEST/root/proc/cpuinfo"

install_wheels() {  # install_wheels TARGET REQUIREMENT...
    target=$1
    shift
    if [ ! -f "$target/.installed" ]; then
        rm -rf "$target"
        "$HOST_PYTHON" -m pip install --quiet --target "$target" --platform manylinux2014_aarch64 \
            --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 --platform manylinux_2_34_aarch64 \
            --implementation cp --python-version 3.11 --abi cp311 --only-binary=:all: "$@"
        touch "$target/.installed"
    fi
}
install_wheels "$DEST/site" -r "$REQUIREMENTS"
install_wheels "$DEST/site-tflite-runtime" "tflite-runtime==2.14.0" "numpy<2" pillow
echo "$DEST"
