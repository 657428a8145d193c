// Shared by every register_*.cpp: NumPy <-> Eigen views and the GIL policy.
// The kernels themselves are compiled once, in cpp/src/ (the build defines
// FASTINFLUENCE_EXTERN_TEMPLATES): a binding only checks and converts its
// arguments, releases the GIL and calls.
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
#include <fastinfluence/fastinfluence.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace fastinfluence::bindings {

namespace py = pybind11;

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

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

// The core's view of X (no copy): dense float32/float64 in C or F order, or
// CSR with float32/float64 data and int32/int64 indices. `name` names X in
// the messages.
inline DesignMatrix design_matrix(const MatrixArg& X, const char* name) {
  if (X.sparse) {
    const bool f64 = py::isinstance<py::array_t<double>>(X.data);
    const bool f32 = py::isinstance<py::array_t<float>>(X.data);
    const bool i64 = py::isinstance<py::array_t<std::int64_t>>(X.indices);
    const bool i32 = py::isinstance<py::array_t<std::int32_t>>(X.indices);
    if (!(f64 || f32) || !(i64 || i32))
      throw std::invalid_argument(std::string(name) + ": sparse data must be float32/float64 with int32/int64 indices");
    if (!(i64 ? py::isinstance<py::array_t<std::int64_t>>(X.indptr)
              : py::isinstance<py::array_t<std::int32_t>>(X.indptr)))
      throw std::invalid_argument(std::string(name) + ".indices and .indptr must share one integer dtype");
    auto csr = [&](auto scalar_tag, auto index_tag) {
      using T = decltype(scalar_tag);
      using I = decltype(index_tag);
      return DesignMatrix::csr(X.rows, X.cols, static_cast<const I*>(X.indptr.data()),
                               static_cast<const I*>(X.indices.data()), static_cast<const T*>(X.data.data()));
    };
    if (f64) return i64 ? csr(double{}, std::int64_t{}) : csr(double{}, std::int32_t{});
    return i64 ? csr(float{}, std::int64_t{}) : csr(float{}, std::int32_t{});
  }
  const py::array& A = X.dense;
  const bool c_order = (A.flags() & py::array::c_style) != 0;
  const bool f_order = (A.flags() & py::array::f_style) != 0;
  if (!c_order && !f_order) throw std::invalid_argument(std::string(name) + " must be C- or F-contiguous");
  if (py::isinstance<py::array_t<double>>(A))
    return DesignMatrix::dense(static_cast<const double*>(A.data()), X.rows, X.cols, c_order);
  if (py::isinstance<py::array_t<float>>(A))
    return DesignMatrix::dense(static_cast<const float*>(A.data()), X.rows, X.cols, c_order);
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
  if (!py::isinstance<py::array_t<double>>(arr) || arr.ndim() != 2 || arr.shape(0) != rows || arr.shape(1) != cols ||
      !(arr.flags() & py::array::c_style) || !arr.writeable())
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
void register_multinomial(py::module_& m);

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
