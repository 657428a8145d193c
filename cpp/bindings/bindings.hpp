// Shared by every register_*.cpp: NumPy <-> Eigen views and the GIL policy.
//
// Validation of shapes, dtypes, finiteness and label domains happens in
// Python (fastinfluence._validation) before these are called; here we only
// check what a wrong call would turn into memory errors.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <fastinfluence/fastinfluence.hpp>
#include <utility>
#include <stdexcept>
#include <string>

namespace fastinfluence::bindings {

namespace py = pybind11;

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

template <class T, int Order>
using MatrixMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>>;

// The design matrix as passed from Python: a 2-D float32/float64 NumPy array
// in C or Fortran order, or a SciPy CSR matrix (canonical: sorted indices, no
// duplicates; float32/float64 data; indices and indptr of one integer type,
// int32 or int64). The Python wrapper guarantees these; the arrays are held
// here so the Eigen views below stay valid.
struct MatrixArg {
  py::array dense;
  py::array data, indices, indptr;
  Index rows = 0, cols = 0;
  bool sparse = false;
};

inline MatrixArg parse_matrix(const py::handle& obj) {
  MatrixArg X;
  if (py::isinstance<py::array>(obj)) {
    X.dense = py::reinterpret_borrow<py::array>(obj);
    if (X.dense.ndim() != 2) throw std::invalid_argument("X must be 2-D");
    X.rows = X.dense.shape(0);
    X.cols = X.dense.shape(1);
    return X;
  }
  if (!py::hasattr(obj, "indptr") || !py::hasattr(obj, "indices") || !py::hasattr(obj, "data"))
    throw std::invalid_argument("X must be a NumPy array or a SciPy CSR matrix");
  X.sparse = true;
  X.data = obj.attr("data").cast<py::array>();
  X.indices = obj.attr("indices").cast<py::array>();
  X.indptr = obj.attr("indptr").cast<py::array>();
  const auto shape = obj.attr("shape").cast<std::pair<Index, Index>>();
  X.rows = shape.first;
  X.cols = shape.second;
  if (X.indptr.ndim() != 1 || X.indptr.shape(0) != X.rows + 1)
    throw std::invalid_argument("X.indptr must have n_rows + 1 entries");
  return X;
}

// Calls f(Map) with an Eigen view of X (no copy): dense row- or column-major,
// or row-major sparse, over float or double.
template <class F>
decltype(auto) with_matrix(const MatrixArg& X, const char* name, F&& f);

#ifdef FASTINFLUENCE_FEW_LAYOUTS
// Sanitizer builds compile every kernel for one dense and one sparse layout
// (float64 row-major, CSR float64/int64) and convert other inputs to those,
// a copy: four times fewer instantiations, the same results to rounding.
template <class F>
decltype(auto) with_one_layout(const MatrixArg& X, const char* name, F&& f) {
  return with_matrix(X, name, [&](const auto& Xm) {
    using XType = std::decay_t<decltype(Xm)>;
    if constexpr (is_sparse_v<XType>) {
      using Csr = Eigen::SparseMatrix<double, Eigen::RowMajor, std::int64_t>;
      const Csr copy = Xm.template cast<double>();
      return f(Eigen::Map<const Csr>(copy.rows(), copy.cols(), copy.nonZeros(), copy.outerIndexPtr(),
                                     copy.innerIndexPtr(), copy.valuePtr()));
    } else {
      const RowMatrixXd copy = Xm.template cast<double>();
      return f(MatrixMap<double, Eigen::RowMajor>(copy.data(), copy.rows(), copy.cols()));
    }
  });
}
#define FASTINFLUENCE_WITH_MATRIX with_one_layout
#else
#define FASTINFLUENCE_WITH_MATRIX with_matrix
#endif

template <class F>
decltype(auto) with_matrix(const MatrixArg& X, const char* name, F&& f) {
  if (X.sparse) {
    const Index nnz = X.data.shape(0);
    auto sparse_view = [&](auto scalar_tag, auto index_tag) {
      using T = decltype(scalar_tag);
      using I = decltype(index_tag);
      if (!py::isinstance<py::array_t<I>>(X.indptr))
        throw std::invalid_argument(std::string(name) + ".indices and .indptr must share one integer dtype");
      return Eigen::Map<const Eigen::SparseMatrix<T, Eigen::RowMajor, I>>(
          X.rows, X.cols, nnz, static_cast<const I*>(X.indptr.data()), static_cast<const I*>(X.indices.data()),
          static_cast<const T*>(X.data.data()));
    };
    const bool f64 = py::isinstance<py::array_t<double>>(X.data);
    const bool f32 = py::isinstance<py::array_t<float>>(X.data);
    const bool i64 = py::isinstance<py::array_t<std::int64_t>>(X.indices);
    const bool i32 = py::isinstance<py::array_t<std::int32_t>>(X.indices);
    if (f64 && i32) return f(sparse_view(double{}, std::int32_t{}));
    if (f64 && i64) return f(sparse_view(double{}, std::int64_t{}));
    if (f32 && i32) return f(sparse_view(float{}, std::int32_t{}));
    if (f32 && i64) return f(sparse_view(float{}, std::int64_t{}));
    throw std::invalid_argument(std::string(name) + ": sparse data must be float32/float64 with int32/int64 indices");
  }
  const py::array& A = X.dense;
  const bool c_order = (A.flags() & py::array::c_style) != 0;
  const bool f_order = (A.flags() & py::array::f_style) != 0;
  if (!c_order && !f_order) throw std::invalid_argument(std::string(name) + " must be C- or F-contiguous");
  if (py::isinstance<py::array_t<double>>(A)) {
    const auto* data = static_cast<const double*>(A.data());
    if (c_order) return f(MatrixMap<double, Eigen::RowMajor>(data, X.rows, X.cols));
    return f(MatrixMap<double, Eigen::ColMajor>(data, X.rows, X.cols));
  }
  if (py::isinstance<py::array_t<float>>(A)) {
    const auto* data = static_cast<const float*>(A.data());
    if (c_order) return f(MatrixMap<float, Eigen::RowMajor>(data, X.rows, X.cols));
    return f(MatrixMap<float, Eigen::ColMajor>(data, X.rows, X.cols));
  }
  throw std::invalid_argument(std::string(name) + " must have dtype float32 or float64, got " +
                              std::string(py::str(A.dtype())));
}

// A read-only view of a contiguous float64 vector (converted once if needed).
inline Eigen::Map<const VectorXd> vector_view(const DoubleArray& a) {
  return Eigen::Map<const VectorXd>(a.data(), a.size());
}

inline void require_length(const DoubleArray& a, Index n, const char* name) {
  if (a.ndim() != 1 || a.shape(0) != n)
    throw std::invalid_argument(std::string(name) + " must have length " + std::to_string(n));
}

inline Index n_params(const MatrixArg& X, bool fit_intercept) { return X.cols + (fit_intercept ? 1 : 0); }

// A matrix of vectors in parameter space (V, M, U, B) has one row per parameter.
inline void require_params(const MatrixArg& X, bool fit_intercept, Index rows, const char* name) {
  if (rows != n_params(X, fit_intercept))
    throw std::invalid_argument(std::string(name) + " must have one row per parameter");
}

// y and weights (empty: all ones) have one entry per row of X, theta one per parameter.
inline void require_problem(const MatrixArg& X, const DoubleArray& y, const DoubleArray& weights,
                            const DoubleArray& theta, bool fit_intercept, const char* theta_name = "theta") {
  require_length(y, X.rows, "y");
  if (weights.size() != 0) require_length(weights, X.rows, "sample_weight");
  require_length(theta, n_params(X, fit_intercept), theta_name);
}

inline LossSpec make_loss(int kind, double t) {
  if (kind < 0 || kind > 3) throw std::invalid_argument("unknown loss kind " + std::to_string(kind));
  return LossSpec{static_cast<LossKind>(kind), t};
}

// A writable (rows, cols) float64 C-order array: the caller's `out` after
// checking it, or a new one.
inline py::array_t<double> output_matrix(const py::object& out, Index rows, Index cols) {
  if (out.is_none()) return py::array_t<double>({rows, cols});
  auto arr = py::reinterpret_borrow<py::array>(out);
  if (!py::isinstance<py::array_t<double>>(arr) || arr.ndim() != 2 || arr.shape(0) != rows ||
      arr.shape(1) != cols || !(arr.flags() & py::array::c_style) || !arr.writeable())
    throw std::invalid_argument("out must be a writable C-contiguous float64 array of shape (" + std::to_string(rows) +
                                ", " + std::to_string(cols) + ")");
  return py::reinterpret_borrow<py::array_t<double>>(arr);
}

inline Eigen::Map<RowMatrixXd> mutable_matrix_view(py::array_t<double>& a) {
  return Eigen::Map<RowMatrixXd>(a.mutable_data(), a.shape(0), a.shape(1));
}

void register_losses(py::module_& m);
void register_kernels(py::module_& m);
void register_scoring(py::module_& m);
void register_solvers(py::module_& m);

}  // namespace fastinfluence::bindings

// MatrixArg converts from any Python object holding X (see parse_matrix).
namespace pybind11::detail {
template <>
struct type_caster<fastinfluence::bindings::MatrixArg> {
  PYBIND11_TYPE_CASTER(fastinfluence::bindings::MatrixArg, const_name("numpy.ndarray | scipy.sparse.csr_matrix"));
  bool load(handle src, bool) {
    value = fastinfluence::bindings::parse_matrix(src);
    return true;
  }
};
}  // namespace pybind11::detail
