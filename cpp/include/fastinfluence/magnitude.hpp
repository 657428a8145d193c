// The largest magnitude among a buffer's values, for the input checks: one
// parallel pass that reads every value once (NumPy's max and min would read
// X twice, on one thread).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "parallel.hpp"

namespace fastinfluence {

// max |values[i]|: NaN if any value is NaN (whatever else it holds), 0 for none.
template <class T>
double max_abs(const T* values, Index size, int n_threads) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  const ChunkPlan plan = plan_chunks(size, 256, Index{1} << 16);
  std::vector<double> partial(static_cast<size_t>(plan.n_chunks), 0.0);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    const Eigen::Map<const Array> chunk(values + plan.begin(c), plan.size(c));
    partial[static_cast<size_t>(c)] = static_cast<double>(chunk.abs().template maxCoeff<Eigen::PropagateNaN>());
  });
  double largest = 0.0;
  for (const double v : partial) {
    if (std::isnan(v)) return std::numeric_limits<double>::quiet_NaN();
    largest = std::max(largest, v);
  }
  return largest;
}

}  // namespace fastinfluence
