# The CUDA emulation tier (docs/ARCHITECTURE.md, "CUDA emulator"): kernels/ and native/ built a
# second time with the host C++ compiler against native/emu, with no CUDA toolkit needed.
#   libspin_native_emu.so  the same C ABI as libspin_native.so, for Java (spin.nativebind) in CI;
#   spin_emu_tests         tests/cuda/kernel_tests.cu over every kernel, under AddressSanitizer
#                          where the compiler has it, with CTest entries for the planted faults.
# Included by CMakeLists.txt before the CUDA compiler check, so it builds where nvcc is missing.
set(SPIN_EMU_RECORD "${SPIN_NATIVE_OUT}/spin-emu-build.properties")

# The .cu sources are C++ to the host compiler, but one source file cannot have two languages in
# one CMake directory; a one-line wrapper per file gives the host compiler its own copy.
file(GLOB SPIN_EMU_CU CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/kernels/*.cu" "${CMAKE_SOURCE_DIR}/native/*.cu")
set(SPIN_EMU_WRAPPERS "")
foreach(cu IN LISTS SPIN_EMU_CU)
  get_filename_component(stem "${cu}" NAME_WE)
  set(wrapper "${CMAKE_BINARY_DIR}/emu-src/${stem}.cpp")
  file(CONFIGURE OUTPUT "${wrapper}" CONTENT "#include \"${cu}\"\n" @ONLY)
  list(APPEND SPIN_EMU_WRAPPERS "${wrapper}")
endforeach()
# The harness: kernel_tests.cu (main, the emulator's own checks) and one <op>_test.cu per op family.
file(GLOB SPIN_EMU_TEST_CU CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/tests/cuda/kernel_tests.cu"
     "${CMAKE_SOURCE_DIR}/tests/cuda/*_test.cu")
set(SPIN_EMU_TEST_WRAPPERS "")
foreach(cu IN LISTS SPIN_EMU_TEST_CU)
  get_filename_component(stem "${cu}" NAME_WE)
  set(wrapper "${CMAKE_BINARY_DIR}/emu-src/test-${stem}.cpp")
  file(CONFIGURE OUTPUT "${wrapper}" CONTENT "#include \"${cu}\"\n" @ONLY)
  list(APPEND SPIN_EMU_TEST_WRAPPERS "${wrapper}")
endforeach()

# native/emu first: its cuda_runtime.h stands in for the toolkit's.
set(SPIN_EMU_INCLUDES "${CMAKE_SOURCE_DIR}/native/emu" "${CMAKE_SOURCE_DIR}/native"
    "${CMAKE_SOURCE_DIR}/native/include" "${CMAKE_SOURCE_DIR}/kernels"
    "${CMAKE_SOURCE_DIR}/tests/cuda")
# -fvisibility=hidden: only the spin_* entry points and the stand-ins' cublasLt* and nccl* (all
# SPIN_EXPORT) leave the library.
set(SPIN_EMU_FLAGS -fvisibility=hidden -Wall -Wextra)

# cublaslt_emu.cpp and nccl_emu.cpp: the stand-ins for libcublasLt and libnccl that Java binds from
# this library (spin.nativebind.CublasLt, spin.nativebind.NcclAbi).
add_library(spin_native_emu SHARED ${SPIN_EMU_WRAPPERS} "${CMAKE_SOURCE_DIR}/native/emu/emu_runtime.cpp"
            "${CMAKE_SOURCE_DIR}/native/emu/cublaslt_emu.cpp" "${CMAKE_SOURCE_DIR}/native/emu/nccl_emu.cpp")
target_include_directories(spin_native_emu PRIVATE ${SPIN_EMU_INCLUDES})
target_compile_features(spin_native_emu PRIVATE cxx_std_17)
target_compile_options(spin_native_emu PRIVATE ${SPIN_EMU_FLAGS} -O2)
# -Bsymbolic: the library's calls to its own spin_* entry points stay inside it, even in a process
# that has libspin_native.so (same names) loaded too.
target_link_options(spin_native_emu PRIVATE -Wl,-Bsymbolic)
set_target_properties(spin_native_emu PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${SPIN_NATIVE_OUT}")

# ASan needs its runtime library; without it the harness still runs, and the planted out-of-bounds
# tests say why they cannot.
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_FLAGS "-fsanitize=address")
set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=address")
check_cxx_source_compiles("int main() { return 0; }" SPIN_EMU_HAVE_ASAN)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_LINK_OPTIONS)

# Kernels, launchers, runtime and tests in one executable: one spin_emu_shared section, one runtime.
add_executable(spin_emu_tests ${SPIN_EMU_WRAPPERS} "${CMAKE_SOURCE_DIR}/native/emu/emu_runtime.cpp"
               ${SPIN_EMU_TEST_WRAPPERS})
target_include_directories(spin_emu_tests PRIVATE ${SPIN_EMU_INCLUDES})
target_compile_features(spin_emu_tests PRIVATE cxx_std_17)
target_compile_options(spin_emu_tests PRIVATE ${SPIN_EMU_FLAGS} -O1 -g)
set_target_properties(spin_emu_tests PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${SPIN_NATIVE_OUT}")
if(SPIN_EMU_HAVE_ASAN)
  # -fsanitize-sections: give the __shared__ variables (section spin_emu_shared) redzones too.
  target_compile_options(spin_emu_tests PRIVATE -fsanitize=address -fsanitize-sections=spin_emu_shared
                         -fno-omit-frame-pointer)
  target_link_options(spin_emu_tests PRIVATE -fsanitize=address)
  set(asan_line "asan=on")
  message(NOTICE "[spin native] CUDA emulator: libspin_native_emu.so and spin_emu_tests (AddressSanitizer on)")
else()
  set(asan_line "asan=off\nasan.reason=the host compiler cannot link -fsanitize=address (install libasan)")
  message(NOTICE "[spin native] CUDA emulator: libspin_native_emu.so and spin_emu_tests "
                 "(AddressSanitizer unavailable: out-of-bounds tests will skip)")
endif()

enable_testing()
add_test(NAME emu_kernel_tests COMMAND spin_emu_tests)
add_test(NAME emu_planted_missing_sync_fails COMMAND spin_emu_tests planted-missing-sync)
add_test(NAME emu_planted_missing_wait_fails COMMAND spin_emu_tests planted-missing-wait)
set_tests_properties(emu_planted_missing_sync_fails emu_planted_missing_wait_fails PROPERTIES WILL_FAIL TRUE)
if(SPIN_EMU_HAVE_ASAN)
  add_test(NAME emu_planted_oob_global_caught COMMAND spin_emu_tests planted-oob-global)
  add_test(NAME emu_planted_oob_shared_caught COMMAND spin_emu_tests planted-oob-shared)
  set_tests_properties(emu_planted_oob_global_caught PROPERTIES PASS_REGULAR_EXPRESSION "heap-buffer-overflow")
  set_tests_properties(emu_planted_oob_shared_caught PROPERTIES PASS_REGULAR_EXPRESSION "global-buffer-overflow")
endif()

file(WRITE "${SPIN_EMU_RECORD}" "status=configured\n${asan_line}\n")
