# The SIMD variants of the compiled core. Each is a module of its own, fastinfluence/_core_<variant>,
# and fastinfluence._native loads the best one the CPU runs (or the one FASTINFLUENCE_SIMD names),
# as faiss ships _swigfaiss_avx2 and _swigfaiss_avx512 beside its baseline module.
#
#   baseline  the compiler's default for the architecture (x86-64: SSE2); builds everywhere
#   avx2      AVX2 + FMA (x86-64-v3's vector part): Eigen's 256-bit packets and fused multiply-adds
#   avx512    AVX-512 F/CD/BW/DQ/VL (x86-64-v4's): Eigen's 512-bit packets
#   native    -march=native, for FASTINFLUENCE_NATIVE=ON: this machine only
#
# FASTINFLUENCE_VARIANTS chooses which are built. "auto" (a source install) builds one, the best
# this machine's CPU runs, so a newcomer waits for one compilation, not three; "all" (the wheels,
# pyproject.toml's [tool.cibuildwheel]) builds every variant of the architecture.

set(FASTINFLUENCE_X86 FALSE)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|x86|i[3-6]86)$")
  set(FASTINFLUENCE_X86 TRUE)
endif()

set(_fastinfluence_flags_avx2 -mavx2 -mfma)
set(_fastinfluence_flags_avx512 -mavx2 -mfma -mavx512f -mavx512cd -mavx512bw -mavx512dq -mavx512vl)

function(fastinfluence_variant_flags variant out)
  if(variant STREQUAL "baseline")
    set(${out} "" PARENT_SCOPE)
  elseif(variant STREQUAL "native")
    set(${out} -march=native PARENT_SCOPE)
  else()
    set(_flags ${_fastinfluence_flags_${variant}})
    if(variant STREQUAL "avx512" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # GCC's own AVX-512 intrinsics (avx512fintrin.h: `__m512d __Y = __Y;`, the undefined vector of
      # _mm512_unpacklo_pd), inlined into Eigen's ptranspose, warn maybe-uninitialized (GCC bug
      # 105593, GCC 12 and 13): 419 such warnings, and none in our code, fail the -Werror build.
      # At -O1 (the sanitizer build, scripts/sanitize.sh, on an AVX-512 machine) the same pattern
      # warns uninitialized. Both stay on for the other variants, which compile the same code.
      list(APPEND _flags -Wno-maybe-uninitialized -Wno-uninitialized)
    endif()
    set(${out} ${_flags} PARENT_SCOPE)
  endif()
endfunction()

# The variants this compiler can build for this architecture, best last.
function(_fastinfluence_buildable out)
  set(_buildable baseline)
  if(FASTINFLUENCE_X86 AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    include(CheckCXXSourceCompiles)
    foreach(_variant avx2 avx512)
      set(CMAKE_REQUIRED_FLAGS "")
      string(JOIN " " CMAKE_REQUIRED_FLAGS ${_fastinfluence_flags_${_variant}})
      check_cxx_source_compiles("#include <immintrin.h>
        int main() { return _mm256_cvtsd_f64(_mm256_fmadd_pd(_mm256_set1_pd(1), _mm256_set1_pd(2), _mm256_set1_pd(3))) > 0 ? 0 : 1; }"
        FASTINFLUENCE_COMPILER_HAS_${_variant})
      if(FASTINFLUENCE_COMPILER_HAS_${_variant})
        list(APPEND _buildable ${_variant})
      endif()
    endforeach()
  endif()
  set(${out} ${_buildable} PARENT_SCOPE)
endfunction()

# The best variant this machine's CPU runs, judged by what -march=native turns on.
function(_fastinfluence_best_for_this_cpu buildable out)
  set(_best baseline)
  if(FASTINFLUENCE_X86 AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    include(CheckCXXSourceCompiles)
    set(CMAKE_REQUIRED_FLAGS -march=native)
    check_cxx_source_compiles("#if !(defined(__AVX2__) && defined(__FMA__))
      #error no AVX2 + FMA
      #endif
      int main() { return 0; }" FASTINFLUENCE_CPU_HAS_avx2)
    check_cxx_source_compiles("#if !(defined(__AVX512F__) && defined(__AVX512CD__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__))
      #error no AVX-512
      #endif
      int main() { return 0; }" FASTINFLUENCE_CPU_HAS_avx512)
    foreach(_variant avx2 avx512)
      if(FASTINFLUENCE_CPU_HAS_${_variant} AND _variant IN_LIST buildable)
        set(_best ${_variant})
      endif()
    endforeach()
  endif()
  set(${out} ${_best} PARENT_SCOPE)
endfunction()

function(fastinfluence_select_variants out)
  if(FASTINFLUENCE_NATIVE)
    if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
      message(FATAL_ERROR "FASTINFLUENCE_NATIVE=ON needs GCC or Clang (-march=native)")
    endif()
    # What a CPU must have to run it, at least: the best variant this one runs (fastinfluence._native
    # checks it, so a native build moved to another machine is refused, not an illegal instruction).
    _fastinfluence_buildable(_buildable)
    _fastinfluence_best_for_this_cpu("${_buildable}" _like)
    set(FASTINFLUENCE_NATIVE_LIKE ${_like} PARENT_SCOPE)
    set(${out} native PARENT_SCOPE)
    return()
  endif()
  _fastinfluence_buildable(_buildable)
  if(FASTINFLUENCE_VARIANTS STREQUAL "auto")
    _fastinfluence_best_for_this_cpu("${_buildable}" _selected)
  elseif(FASTINFLUENCE_VARIANTS STREQUAL "all")
    set(_selected ${_buildable})
  elseif(FASTINFLUENCE_VARIANTS STREQUAL "")
    message(FATAL_ERROR "FASTINFLUENCE_VARIANTS is empty: auto, all, or a list of baseline;avx2;avx512")
  else()
    set(_selected ${FASTINFLUENCE_VARIANTS})
    foreach(_variant IN LISTS _selected)
      if(NOT _variant IN_LIST _buildable)
        message(FATAL_ERROR "FASTINFLUENCE_VARIANTS: ${_variant} cannot be built here "
                            "(this compiler and architecture build: ${_buildable})")
      endif()
    endforeach()
  endif()
  set(${out} ${_selected} PARENT_SCOPE)
endfunction()
