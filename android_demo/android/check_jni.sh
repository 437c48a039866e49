#!/bin/sh
# What can be checked of the Android native part without the Android SDK/NDK: the app's own
# app/src/main/cpp/CMakeLists.txt (libtfcompress_jni.so + libtfcompress_ops.so from
# converters/) cross-compiled with Debian's GCC cross compilers, linked with --no-undefined,
# exporting the JNI entry points Kotlin calls, and the op library's kernel check
# (tfcompress_check_kernels: every kernel against the reference) run under qemu-user
# (`make android-jni-check`).
#
#   android_demo/android/check_jni.sh [ABI ...]        (from anywhere; default: both ABIs)
#
#   arm64-v8a    g++-aarch64-linux-gnu, converters/cmake/aarch64-linux-gnu.cmake (NEON kernels)
#   armeabi-v7a  g++-arm-linux-gnueabihf, android_demo/android/cmake/arm-linux-gnueabihf.cmake
#                (ARMv7-A Thumb-2, scalar kernels; hard-float glibc, not Android's softfp bionic)
#
# Not the NDK: the libraries link against glibc, not bionic, so they are not the APK's
# libraries; the NDK build (Gradle) is still needed for those.
# Needs: apt-get install g++-aarch64-linux-gnu g++-arm-linux-gnueabihf (qemu-user-static to
# run the kernel check); a JDK for jni.h
# (JAVA_HOME or /usr/lib/jvm/*).
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
JDK=${JAVA_HOME:-$(dirname "$(dirname "$(find /usr/lib/jvm -name jni.h -path '*/include/*' 2>/dev/null | head -n 1)")")}
if [ ! -f "$JDK/include/jni.h" ]; then
    echo "check_jni: no jni.h found; set JAVA_HOME to a JDK" >&2
    exit 1
fi
[ $# -gt 0 ] || set -- arm64-v8a armeabi-v7a
for abi in "$@"; do
    case $abi in
        arm64-v8a) toolchain=$REPO/converters/cmake/aarch64-linux-gnu.cmake triplet=aarch64-linux-gnu qemu=qemu-aarch64-static ;;
        armeabi-v7a) toolchain=$REPO/android_demo/android/cmake/arm-linux-gnueabihf.cmake triplet=arm-linux-gnueabihf qemu=qemu-arm-static ;;
        *) echo "check_jni: unknown ABI $abi (arm64-v8a, armeabi-v7a)" >&2; exit 2 ;;
    esac
    build=$REPO/build/android-jni-$abi
    echo "== $abi: $toolchain"
    cmake -S "$REPO/android_demo/android/app/src/main/cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DTFCOMPRESS_REPO="$REPO" \
        -DJNI_INCLUDE_DIRS="$JDK/include;$JDK/include/linux" -DTFCOMPRESS_HEADERS_DIR="$REPO/build/tflite-headers"
    cmake --build "$build" --parallel
    cmake --build "$build" --parallel --target tfcompress_check_kernels
    prefix=$triplet-
    jni=$build/libtfcompress_jni.so
    ops=$build/tfcompress_ops/libtfcompress_ops.so
    file "$jni" "$ops"
    "${prefix}nm" -D --defined-only "$jni" | grep Java_org_tfcompress_flowers_
    for symbol in tflite_plugin_create_delegate tflite_plugin_destroy_delegate tfc_op_names; do
        "${prefix}nm" -D --defined-only "$ops" | grep -q " T $symbol\$" || { echo "check_jni: $ops lacks $symbol" >&2; exit 1; }
    done
    echo "$abi: ops $(strings "$ops" | grep -E '^Tfc[A-Za-z0-9]+$' | grep -v Delegate | sort -u | tr '\n' ' ')"
    echo "$abi: NEON symbols in libtfcompress_ops.so: $("${prefix}nm" -C "$ops" | grep -c -i neon || true)"
    # Every kernel of this build against the reference kernel, run under qemu-user.
    if command -v "$qemu" > /dev/null; then
        "$qemu" -L "/usr/$triplet" "$build/tfcompress_ops/tfcompress_check_kernels"
    else
        echo "$abi: $qemu not found (apt-get install qemu-user-static): kernels not run"
    fi
done
