// Streaming top-k: the k most negative (helpful) and k most positive
// (harmful) entries of every column of S = diag(row_scale) Xa M (or of any
// scores computed block by block: streaming_top_k), without ever holding S:
// O(threads * m * k) memory.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "parallel.hpp"
#include "problem.hpp"

namespace fastinfluence {

// Keeps the k largest keys seen (a min-heap on the key). Keys are
// (value, -index): ties go to the lower row index, so the result is the same
// for any thread count.
class BoundedTopK {
 public:
  using Key = std::pair<double, Index>;
  explicit BoundedTopK(Index k = 0) : k_(static_cast<size_t>(k)) { heap_.reserve(k_); }
  // No value below this can enter: -inf until the heap is full, then the
  // worst kept value (equal values are decided by accepts, on the row).
  double floor_value() const {
    if (k_ == 0) return std::numeric_limits<double>::infinity();
    return heap_.size() < k_ ? -std::numeric_limits<double>::infinity() : heap_.front().first;
  }
  // Cheap test before push: false when (value, row) cannot enter a full heap.
  bool accepts(double value, Index row) const {
    if (heap_.size() < k_) return k_ > 0;
    const Key& worst = heap_.front();
    return value > worst.first || (value == worst.first && -row > worst.second);
  }
  void push(double value, Index row) {
    const Key key{value, -row};
    if (heap_.size() < k_) {
      heap_.push_back(key);
      std::push_heap(heap_.begin(), heap_.end(), std::greater<Key>());
    } else if (k_ > 0 && key > heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<Key>());
      heap_.back() = key;
      std::push_heap(heap_.begin(), heap_.end(), std::greater<Key>());
    }
  }
  void merge(const BoundedTopK& other) {
    for (const Key& key : other.heap_) push(key.first, -key.second);
  }
  // Best first.
  std::vector<Key> sorted() const {
    std::vector<Key> out = heap_;
    std::sort(out.begin(), out.end(), std::greater<Key>());
    return out;
  }

 private:
  size_t k_;
  std::vector<Key> heap_;
};

struct TopKResult {
  Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> helpful_rows, harmful_rows;  // (m, k)
  RowMatrixXd helpful_scores, harmful_scores;                                                        // (m, k)
};

inline constexpr Index kTopKPanel = 128;  // test points scored per GEMM in top_k_scores

// The selection of top_k_scores over any scores: score(Xb, b, nb, j0, w, S, T) fills S
// (nb x w, column-major) with the scores of rows b .. b + nb - 1 for test points j0 .. j0 + w - 1
// (T is scratch of its own). Each row block is scored in panels of test points, each panel
// scanned while it is still in cache (1024 rows x 1000 test points would be 8 MB).
template <class XType, class Score>
TopKResult streaming_top_k(const XType& X, Index m, Index k, int n_threads, Score&& score) {
  k = std::min(k, X.rows());
  const int threads = resolve_threads(n_threads);
  // [thread][column]: helpful keeps -score (most negative scores), harmful keeps +score.
  std::vector<std::vector<BoundedTopK>> helpful(static_cast<size_t>(threads),
                                                std::vector<BoundedTopK>(static_cast<size_t>(m), BoundedTopK(k)));
  std::vector<std::vector<BoundedTopK>> harmful = helpful;
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, threads, [&](Index c) {
    auto& help = helpful[static_cast<size_t>(current_thread())];
    auto& harm = harmful[static_cast<size_t>(current_thread())];
    // Offers the nb scores of test point j for rows b.. to its two heaps. Once
    // the heaps are full almost no score enters: compare against two floors
    // held in registers and touch a heap only when one is reached.
    const auto scan_column = [&](const double* column, Index j, Index b, Index nb) {
      auto& hj = help[static_cast<size_t>(j)];
      auto& rj = harm[static_cast<size_t>(j)];
      double help_floor = hj.floor_value(), harm_floor = rj.floor_value();
      for (Index i = 0; i < nb; ++i) {
        const double v = column[i];
        if (!(-v < help_floor) && hj.accepts(-v, b + i)) {  // "!(<)": a NaN still fills a heap, as before
          hj.push(-v, b + i);
          help_floor = hj.floor_value();
        }
        if (!(v < harm_floor) && rj.accepts(v, b + i)) {
          rj.push(v, b + i);
          harm_floor = rj.floor_value();
        }
      }
    };
    MatrixXd S, T;
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      for (Index j0 = 0; j0 < m; j0 += kTopKPanel) {
        const Index w = std::min(kTopKPanel, m - j0);
        score(Xb, b, nb, j0, w, S, T);
        for (Index jj = 0; jj < w; ++jj) scan_column(S.col(jj).data(), j0 + jj, b, nb);
      }
    });
  });
  TopKResult res;
  res.helpful_rows.resize(m, k);
  res.harmful_rows.resize(m, k);
  res.helpful_scores.resize(m, k);
  res.harmful_scores.resize(m, k);
  for (Index j = 0; j < m; ++j) {
    BoundedTopK help(k), harm(k);
    for (int t = 0; t < threads; ++t) {
      help.merge(helpful[static_cast<size_t>(t)][static_cast<size_t>(j)]);
      harm.merge(harmful[static_cast<size_t>(t)][static_cast<size_t>(j)]);
    }
    const auto hs = help.sorted(), rs = harm.sorted();
    for (Index r = 0; r < k; ++r) {
      res.helpful_rows(j, r) = -hs[static_cast<size_t>(r)].second;
      res.helpful_scores(j, r) = -hs[static_cast<size_t>(r)].first;
      res.harmful_rows(j, r) = -rs[static_cast<size_t>(r)].second;
      res.harmful_scores(j, r) = rs[static_cast<size_t>(r)].first;
    }
  }
  return res;
}

template <class XType>
TopKResult top_k_scores(const XType& X, bool fit_intercept, VectorCRef row_scale, MatrixCRef M, Index k,
                        int n_threads) {
  const Index d = X.cols();
  return streaming_top_k(X, M.cols(), k, n_threads,
                         [&](const auto& Xb, Index b, Index nb, Index j0, Index w, MatrixXd& S, MatrixXd&) {
                           // S = diag(row_scale_b) (Xb M_w + 1 M_b) for this panel's columns of M
                           S.noalias() = Xb * M.block(0, j0, d, w);
                           if (fit_intercept) S.rowwise() += M.row(d).segment(j0, w);
                           S = row_scale.segment(b, nb).asDiagonal() * S;
                         });
}

// Compiled once, in cpp/src/top_k.cpp (see objective.hpp).
#define FASTINFLUENCE_TOP_K_INSTANCES(EXTERN, XType) \
  EXTERN template TopKResult top_k_scores<XType>(const XType&, bool, VectorCRef, MatrixCRef, Index, int);

#ifdef FASTINFLUENCE_EXTERN_TEMPLATES
FASTINFLUENCE_TOP_K_INSTANCES(extern, DesignMatrix)
#endif

}  // namespace fastinfluence
