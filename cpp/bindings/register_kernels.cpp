// Fused passes over X: per-row derivatives, objective/gradient/Hessian, HVP.
#include "bindings.hpp"

namespace fastinfluence::bindings {

template <class T>
double max_abs_of(const py::array_t<T, py::array::c_style>& a, int n_threads) {
  const T* data = a.data();
  const Index size = static_cast<Index>(a.size());
  py::gil_scoped_release release;  // safe: a view of an array owned by the caller's frame
  return max_abs(data, size, n_threads);
}

void register_kernels(py::module_& m) {
  // max |a| of a contiguous 1-D float64 or float32 array (NaN if it holds a NaN)
  m.def("max_abs", &max_abs_of<double>, py::arg("a").noconvert(), py::arg("n_threads") = 0);
  m.def("max_abs", &max_abs_of<float>, py::arg("a").noconvert(), py::arg("n_threads") = 0);

  m.def(
      "row_derivatives",
      [](int kind, double t, const MatrixArg& X, const DoubleArray& y, const DoubleArray& theta, bool fit_intercept,
         int n_threads) {
        const LossSpec spec = make_loss(kind, t);
        const Index n = X.rows;
        require_length(y, n, "y");
        require_length(theta, n_params(X, fit_intercept), "theta");
        py::array_t<double> eta(n), value(n), d1(n), d2(n);
        Eigen::Map<VectorXd> e(eta.mutable_data(), n), v(value.mutable_data(), n), g(d1.mutable_data(), n),
            h(d2.mutable_data(), n);
        const DesignMatrix Xm = design_matrix(X, "X");
        {
          // Safe: only views of buffers kept alive by this frame are used.
          py::gil_scoped_release release;
          row_derivatives(spec, Xm, vector_view(y), vector_view(theta), fit_intercept, e, v, g, h, n_threads);
        }
        return py::make_tuple(eta, value, d1, d2);
      },
      py::arg("kind"), py::arg("t"), py::arg("X"), py::arg("y"), py::arg("theta"), py::arg("fit_intercept"),
      py::arg("n_threads"));

  // (value, gradient | None, Hessian | None, loss' | None, loss'' | None): the
  // per-row derivatives (unweighted, (n,)) come from the same pass when want_rows.
  m.def(
      "evaluate",
      [](int kind, double t, const MatrixArg& X, const DoubleArray& y, const DoubleArray& weights,
         const DoubleArray& theta, bool fit_intercept, double l2, bool want_gradient, bool want_hessian, int n_threads,
         bool want_rows) {
        const LossSpec spec = make_loss(kind, t);
        require_problem(X, y, weights, theta, fit_intercept);
        py::object d1 = py::none(), d2 = py::none();
        RowDerivativesOut rows;
        if (want_rows) {
          py::array_t<double> d1_array(X.rows), d2_array(X.rows);
          rows = {d1_array.mutable_data(), d2_array.mutable_data()};
          d1 = std::move(d1_array);
          d2 = std::move(d2_array);
        }
        const DesignMatrix Xm = design_matrix(X, "X");
        const Problem<DesignMatrix> prob{Xm, vector_view(y), vector_view(weights), fit_intercept, l2};
        Evaluation ev;
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
          ev = evaluate(spec, prob, vector_view(theta), Want{want_gradient, want_hessian}, n_threads, rows);
        }
        py::object gradient = py::none(), hessian = py::none();
        if (want_gradient) gradient = py::cast(std::move(ev.gradient));
        if (want_hessian) hessian = py::cast(std::move(ev.hessian));
        return py::make_tuple(ev.value, gradient, hessian, d1, d2);
      },
      py::arg("kind"), py::arg("t"), py::arg("X"), py::arg("y"), py::arg("weights"), py::arg("theta"),
      py::arg("fit_intercept"), py::arg("l2"), py::arg("want_gradient"), py::arg("want_hessian"), py::arg("n_threads"),
      py::arg("want_rows") = false);

  m.def(
      "hessian_vector_product",
      [](int kind, double t, const MatrixArg& X, const DoubleArray& y, const DoubleArray& weights,
         const DoubleArray& theta, bool fit_intercept, double l2, const Eigen::Ref<const MatrixXd>& V, int n_threads) {
        const LossSpec spec = make_loss(kind, t);
        require_problem(X, y, weights, theta, fit_intercept);
        require_params(X, fit_intercept, V.rows(), "V");
        const DesignMatrix Xm = design_matrix(X, "X");
        const Problem<DesignMatrix> prob{Xm, vector_view(y), vector_view(weights), fit_intercept, l2};
        py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
        return hessian_vector_product(spec, prob, vector_view(theta), V, n_threads);
      },
      py::arg("kind"), py::arg("t"), py::arg("X"), py::arg("y"), py::arg("weights"), py::arg("theta"),
      py::arg("fit_intercept"), py::arg("l2"), py::arg("V"), py::arg("n_threads"));
}

}  // namespace fastinfluence::bindings
