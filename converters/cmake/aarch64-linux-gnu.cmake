# CMake toolchain file: cross-build libtfcompress_ops.so for 64-bit ARM Linux (Raspberry Pi
# OS / Debian arm64) with Debian's cross compiler (apt-get install g++-aarch64-linux-gnu).
#
#   cmake -S converters -B build/native-aarch64 \
#         -DCMAKE_TOOLCHAIN_FILE=converters/cmake/aarch64-linux-gnu.cmake && cmake --build build/native-aarch64
#   (or: make native-aarch64)
#
# CMAKE_SYSTEM_PROCESSOR=aarch64 makes converters/CMakeLists.txt compile the NEON kernels.
# Another triplet prefix (e.g. a Linaro or Buildroot toolchain) can be given with
# -DTFCOMPRESS_CROSS_PREFIX=aarch64-none-linux-gnu-.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(TFCOMPRESS_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Prefix of the cross compiler's programs")
find_program(CMAKE_C_COMPILER NAMES ${TFCOMPRESS_CROSS_PREFIX}gcc)
find_program(CMAKE_CXX_COMPILER NAMES ${TFCOMPRESS_CROSS_PREFIX}g++)
if(NOT CMAKE_CXX_COMPILER)
  message(FATAL_ERROR "${TFCOMPRESS_CROSS_PREFIX}g++ not found: apt-get install g++-aarch64-linux-gnu "
                      "(Debian/Ubuntu), or pass -DTFCOMPRESS_CROSS_PREFIX=<your toolchain's prefix>")
endif()

# Libraries and programs come from the target; headers may come from the host too: the
# TFLite and flatbuffers headers (build/tflite-headers or a system include folder) are
# architecture-independent.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
