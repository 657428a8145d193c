// Streaming top-k: the k most negative (helpful) and k most positive
// (harmful) entries of every column of S = diag(row_scale) Xa M (or of any
// scores computed block by block: streaming_top_k), without ever holding S:
// O(threads * m * k) memory.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <functional>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "parallel.hpp"
#include "problem.hpp"
#include "products.hpp"
#include "screening.hpp"

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

// The per-thread heaps of a streaming top-k over m columns, [thread][column]:
// helpful keeps -score (the most negative scores), harmful keeps +score.
class TopKHeaps {
 public:
  TopKHeaps(int threads, Index m, Index k)
      : k_(k),
        helpful_(static_cast<size_t>(threads), std::vector<BoundedTopK>(static_cast<size_t>(m), BoundedTopK(k))),
        harmful_(helpful_) {}

  // Offers the nb scores of column j for rows b.. to the calling thread's two
  // heaps. Once the heaps are full almost no score enters: compare against two
  // floors held in registers and touch a heap only when one is reached.
  void scan(Index j, Index b, Index nb, const double* column) {
    auto& hj = helpful(j);
    auto& rj = harmful(j);
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
  }

  // The same for scores known only within bounds, |a_i - s_i| <= bound_i
  // (finite): a row whose bound reaches a floor is scored exactly, score(b + i),
  // and offered; no other row can enter (see screening.hpp).
  template <class Score>
  void scan_bounded(Index j, Index b, Index nb, const Eigen::ArrayXd& a, const Eigen::ArrayXd& bound, Score&& score) {
    auto& hj = helpful(j);
    auto& rj = harmful(j);
    double help_floor = hj.floor_value(), harm_floor = rj.floor_value();
    // most blocks of a column hold no candidate: two vectorised maxima decide ("<", so that a NaN,
    // which the screening pass never hands over, would still be scanned row by row)
    if ((a + bound).maxCoeff() < harm_floor && (bound - a).maxCoeff() < help_floor) return;
    for (Index i = 0; i < nb; ++i) {
      const bool harm = !(a[i] + bound[i] < harm_floor), help = !(bound[i] - a[i] < help_floor);
      if (!harm && !help) continue;
      const double v = score(b + i);
      if (help && hj.accepts(-v, b + i)) {
        hj.push(-v, b + i);
        help_floor = hj.floor_value();
      }
      if (harm && rj.accepts(v, b + i)) {
        rj.push(v, b + i);
        harm_floor = rj.floor_value();
      }
    }
  }

  // Merges the threads' heaps: exact, as each thread's top k of a column holds
  // every row of the overall top k that it saw.
  TopKResult result() const {
    const Index m = static_cast<Index>(helpful_[0].size());
    TopKResult res;
    res.helpful_rows.resize(m, k_);
    res.harmful_rows.resize(m, k_);
    res.helpful_scores.resize(m, k_);
    res.harmful_scores.resize(m, k_);
    for (Index j = 0; j < m; ++j) {
      BoundedTopK help(k_), harm(k_);
      for (size_t t = 0; t < helpful_.size(); ++t) {
        help.merge(helpful_[t][static_cast<size_t>(j)]);
        harm.merge(harmful_[t][static_cast<size_t>(j)]);
      }
      const auto hs = help.sorted(), rs = harm.sorted();
      for (Index r = 0; r < k_; ++r) {
        res.helpful_rows(j, r) = -hs[static_cast<size_t>(r)].second;
        res.helpful_scores(j, r) = -hs[static_cast<size_t>(r)].first;
        res.harmful_rows(j, r) = -rs[static_cast<size_t>(r)].second;
        res.harmful_scores(j, r) = rs[static_cast<size_t>(r)].first;
      }
    }
    return res;
  }

 private:
  BoundedTopK& helpful(Index j) { return helpful_[static_cast<size_t>(current_thread())][static_cast<size_t>(j)]; }
  BoundedTopK& harmful(Index j) { return harmful_[static_cast<size_t>(current_thread())][static_cast<size_t>(j)]; }
  Index k_;
  std::vector<std::vector<BoundedTopK>> helpful_, harmful_;
};

// The selection of top_k_scores over any scores: score(Xb, b, nb, j0, w, S, T) fills S
// (nb x w, column-major) with the scores of rows b .. b + nb - 1 for test points j0 .. j0 + w - 1
// (T is scratch of its own). Each row block is scored in panels of test points, each panel
// scanned while it is still in cache (1024 rows x 1000 test points would be 8 MB).
template <class XType, class Score>
TopKResult streaming_top_k(const XType& X, Index m, Index k, int n_threads, Score&& score) {
  k = std::min(k, X.rows());
  const int threads = resolve_threads(n_threads);
  TopKHeaps heaps(threads, m, k);
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, threads, [&](Index c) {
    MatrixXd S, T;
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      for (Index j0 = 0; j0 < m; j0 += kTopKPanel) {
        const Index w = std::min(kTopKPanel, m - j0);
        score(Xb, b, nb, j0, w, S, T);
        for (Index jj = 0; jj < w; ++jj) heaps.scan(j0 + jj, b, nb, S.col(jj).data());
      }
    });
  });
  return heaps.result();
}

// Which pass top_k_scores takes: the float32 screening pass wherever the data
// allow it (screening.hpp), or always the float64 one. Both give the top k of
// the float64 scores; they can differ only where two scores are within a few
// ulps, as any two float64 computations of the same sum can.
enum class Screening : int { automatic = -1, off = 0, on = 1 };

// The screening pass pays off once its float32 copy of M and its norm pass
// are small against the GEMM.
inline bool screening_pays(Index n, Index m) { return n >= 4096 && m >= 8; }

// The top k by the screening pass of screening.hpp, into res, when it is
// wanted and the data allow it; false otherwise (res untouched).
template <template <class> class Scores, class... Data>
bool screened_top_k(const DesignMatrix& X, bool fit_intercept, Index m, Index k, int n_threads, Screening screening,
                    TopKResult& res, const Data&... data) {
  const bool wanted = screening == Screening::on || (screening == Screening::automatic && screening_pays(X.rows(), m));
  if (!wanted || X.is_sparse()) return false;
  TopKHeaps heaps(resolve_threads(n_threads), m, std::min(k, X.rows()));
  bool done;
  if (X.is_float32()) {
    Scores<float> scores(X, fit_intercept, data...);  // views of data, which outlive it
    done = screened_scan(X, fit_intercept, scores, n_threads, heaps);
  } else {
    Scores<double> scores(X, fit_intercept, data...);
    done = screened_scan(X, fit_intercept, scores, n_threads, heaps);
  }
  if (done) res = heaps.result();
  return done;
}

template <class XType>
TopKResult top_k_scores(const XType& X, bool fit_intercept, VectorCRef row_scale, MatrixCRef M, Index k, int n_threads,
                        Screening screening = Screening::automatic) {
  const Index d = X.cols();
  if constexpr (std::is_same_v<XType, DesignMatrix>) {
    TopKResult res;
    if (screened_top_k<LinearScores>(X, fit_intercept, M.cols(), k, n_threads, screening, res, row_scale, M))
      return res;
  }
  return streaming_top_k(X, M.cols(), k, n_threads,
                         [&](const auto& Xb, Index b, Index nb, Index j0, Index w, MatrixXd& S, MatrixXd&) {
                           // S = diag(row_scale_b) (Xb M_w + 1 M_b) for this panel's columns of M
                           S.resize(nb, w);
                           affine_product(Xb, M.block(0, j0, d, w), M.block(d, j0, fit_intercept ? 1 : 0, w), S);
                           S = row_scale.segment(b, nb).asDiagonal() * S;
                         });
}

// Compiled once, in cpp/src/top_k.cpp (see objective.hpp).
#define FASTINFLUENCE_TOP_K_INSTANCES(EXTERN, XType) \
  EXTERN template TopKResult top_k_scores<XType>(const XType&, bool, VectorCRef, MatrixCRef, Index, int, Screening);

#ifdef FASTINFLUENCE_EXTERN_TEMPLATES
FASTINFLUENCE_TOP_K_INSTANCES(extern, DesignMatrix)
#endif

}  // namespace fastinfluence
