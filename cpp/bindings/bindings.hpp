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

#include <fastinfluence/fastinfluence.hpp>
#include <stdexcept>
#include <string>

namespace fastinfluence::bindings {

namespace py = pybind11;

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

template <class T, int Order>
using MatrixMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>>;

// Calls f(Map) on a 2-D float32/float64 array in C or Fortran order, without
// copying. Any other layout is a programming error of the Python wrapper.
template <class F>
decltype(auto) with_matrix(const py::array& X, const char* name, F&& f) {
  if (X.ndim() != 2) throw std::invalid_argument(std::string(name) + " must be 2-D");
  const Index rows = X.shape(0), cols = X.shape(1);
  const bool c_order = (X.flags() & py::array::c_style) != 0;
  const bool f_order = (X.flags() & py::array::f_style) != 0;
  if (!c_order && !f_order) throw std::invalid_argument(std::string(name) + " must be C- or F-contiguous");
  if (py::isinstance<py::array_t<double>>(X)) {
    const auto* data = static_cast<const double*>(X.data());
    if (c_order) return f(MatrixMap<double, Eigen::RowMajor>(data, rows, cols));
    return f(MatrixMap<double, Eigen::ColMajor>(data, rows, cols));
  }
  if (py::isinstance<py::array_t<float>>(X)) {
    const auto* data = static_cast<const float*>(X.data());
    if (c_order) return f(MatrixMap<float, Eigen::RowMajor>(data, rows, cols));
    return f(MatrixMap<float, Eigen::ColMajor>(data, rows, cols));
  }
  throw std::invalid_argument(std::string(name) + " must have dtype float32 or float64, got " +
                              std::string(py::str(X.dtype())));
}

// A read-only view of a contiguous float64 vector (converted once if needed).
inline Eigen::Map<const VectorXd> vector_view(const DoubleArray& a) {
  return Eigen::Map<const VectorXd>(a.data(), a.size());
}

inline void require_length(const DoubleArray& a, Index n, const char* name) {
  if (a.ndim() != 1 || a.shape(0) != n)
    throw std::invalid_argument(std::string(name) + " must have length " + std::to_string(n));
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
void register_fit(py::module_& m);
void register_scoring(py::module_& m);

}  // namespace fastinfluence::bindings
