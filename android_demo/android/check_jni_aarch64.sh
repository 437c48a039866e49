#!/bin/sh
# What can be checked of the Android native part without the Android SDK/NDK: the JNI
# library and the op library (with its NEON kernels) built by the app's own CMakeLists.txt
# for aarch64 with Debian's cross compiler, linked with --no-undefined, exporting the JNI
# entry points Kotlin calls.
#
#   android_demo/android/check_jni_aarch64.sh          (from the repository root)
# Needs: apt-get install g++-aarch64-linux-gnu; a JDK for jni.h (JAVA_HOME or /usr/lib/jvm/*).
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$REPO/build/android-jni-aarch64}
JDK=${JAVA_HOME:-$(dirname "$(dirname "$(find /usr/lib/jvm -name jni.h -path '*/include/*' | head -n 1)")")}
if [ ! -f "$JDK/include/jni.h" ]; then
    echo "check_jni_aarch64: no jni.h found; set JAVA_HOME to a JDK" >&2
    exit 1
fi
cmake -S "$REPO/android_demo/android/app/src/main/cpp" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$REPO/converters/cmake/aarch64-linux-gnu.cmake" \
    -DTFCOMPRESS_REPO="$REPO" -DJNI_INCLUDE_DIRS="$JDK/include;$JDK/include/linux" \
    -DTFCOMPRESS_HEADERS_DIR="$REPO/build/tflite-headers"
cmake --build "$BUILD" --parallel
for lib in libtfcompress_jni.so tfcompress_ops/libtfcompress_ops.so; do
    file "$BUILD/$lib"
done
aarch64-linux-gnu-nm -D --defined-only "$BUILD/libtfcompress_jni.so" | grep Java_org_tfcompress_flowers_
aarch64-linux-gnu-nm -C "$BUILD/tfcompress_ops/libtfcompress_ops.so" | grep -c -i neon | sed 's/^/NEON symbols in libtfcompress_ops.so: /'
