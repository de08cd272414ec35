# Cross-compiling for 64-bit Arm Linux with Debian's aarch64-linux-gnu-gcc/g++
# (apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu; run the results under
# qemu-user: qemu-aarch64 -L /usr/aarch64-linux-gnu ./prog, or link them -static).
#
#   cmake -S tflite/core -B build/core-aarch64 \
#         -DCMAKE_TOOLCHAIN_FILE=tflite/toolchains/aarch64-linux-gnu.cmake
#
# SBNN_AARCH64_PREFIX overrides the compiler prefix (default aarch64-linux-gnu-).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT DEFINED SBNN_AARCH64_PREFIX)
  set(SBNN_AARCH64_PREFIX "aarch64-linux-gnu-")
endif()
set(CMAKE_C_COMPILER "${SBNN_AARCH64_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${SBNN_AARCH64_PREFIX}g++")

# Target libraries and headers come from the cross sysroot, programs from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Lets CTest run the cross-built tests through qemu when it is installed.
find_program(SBNN_QEMU_AARCH64 qemu-aarch64)
if(SBNN_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${SBNN_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu")
endif()
