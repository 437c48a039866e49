# CMake toolchain file: the armeabi-v7a stand-in for check_jni.sh, Debian's 32-bit ARM cross
# compiler (apt-get install g++-arm-linux-gnueabihf) with the code-generation flags of the
# NDK's armeabi-v7a ABI (ARMv7-A, Thumb-2, NEON/VFPv3). What differs from a real NDK build:
# glibc instead of bionic, and the hard-float calling convention (gnueabihf) instead of
# Android's softfp. It shows the sources compile and link for a 32-bit ARM target
# (32-bit pointers and size_t, ARM alignment); it does not make an Android library.
#
# CMAKE_SYSTEM_PROCESSOR=armv7-a: converters/CMakeLists.txt builds the scalar kernels only
# (its NEON kernels are aarch64-only), as the NDK build does for armeabi-v7a.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7-a)

set(TFCOMPRESS_CROSS_PREFIX "arm-linux-gnueabihf-" CACHE STRING "Prefix of the cross compiler's programs")
find_program(CMAKE_C_COMPILER NAMES ${TFCOMPRESS_CROSS_PREFIX}gcc)
find_program(CMAKE_CXX_COMPILER NAMES ${TFCOMPRESS_CROSS_PREFIX}g++)
if(NOT CMAKE_CXX_COMPILER)
  message(FATAL_ERROR "${TFCOMPRESS_CROSS_PREFIX}g++ not found: apt-get install g++-arm-linux-gnueabihf")
endif()
# -Wno-psabi: GCC's notes that the passing of some std::vector iterators changed in GCC 7.1
# (all of this library is built by one compiler, so nothing is affected).
set(CMAKE_CXX_FLAGS_INIT "-march=armv7-a -mthumb -mfpu=neon -Wno-psabi")

set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
