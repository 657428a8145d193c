// Build information reported by fastinfluence.show_config().
#pragma once

#include <Eigen/Core>
#include <string>
#include <vector>

#include "parallel.hpp"

namespace fastinfluence {

inline std::string eigen_version() {
  return std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
         std::to_string(EIGEN_MINOR_VERSION);
}

// The SIMD instruction sets Eigen vectorises with in this build.
inline std::string simd_instruction_sets() { return Eigen::SimdInstructionSetsInUse(); }

// The instruction-set extensions this build was compiled for, from the compiler's macros: Eigen
// 3.4's SimdInstructionSetsInUse() says "AVX" for AVX2 + FMA builds as well.
inline std::vector<std::string> compiled_instruction_sets() {
  std::vector<std::string> sets;
#ifdef __SSE4_2__
  sets.emplace_back("SSE4.2");
#endif
#ifdef __AVX__
  sets.emplace_back("AVX");
#endif
#ifdef __AVX2__
  sets.emplace_back("AVX2");
#endif
#ifdef __FMA__
  sets.emplace_back("FMA");
#endif
#ifdef __AVX512F__
  sets.emplace_back("AVX512F");
#endif
#ifdef __ARM_NEON
  sets.emplace_back("NEON");
#endif
  return sets;
}

}  // namespace fastinfluence
