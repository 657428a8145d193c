// Build information reported by fastinfluence.show_config().
#pragma once

#include <Eigen/Core>
#include <string>

#include "parallel.hpp"

namespace fastinfluence {

inline std::string eigen_version() {
  return std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
         std::to_string(EIGEN_MINOR_VERSION);
}

// The SIMD instruction sets Eigen vectorises with in this build.
inline std::string simd_instruction_sets() { return Eigen::SimdInstructionSetsInUse(); }

}  // namespace fastinfluence
