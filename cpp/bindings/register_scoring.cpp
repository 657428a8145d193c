// Batch scoring: the dense products that turn solved test gradients into
// influence values for every training row.
#include "bindings.hpp"

namespace fastinfluence::bindings {

void register_scoring(py::module_& m) {
  m.def(
      "scaled_row_products",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& row_scale, const Eigen::Ref<const MatrixXd>& M,
         const py::object& out, int n_threads) {
        const Index n = X.rows;
        require_length(row_scale, n, "row_scale");
        require_params(X, fit_intercept, M.rows(), "M");
        py::array_t<double> result = output_matrix(out, n, M.cols());
        auto dst = mutable_matrix_view(result);
        const DesignMatrix Xm = design_matrix(X, "X");
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          scaled_row_products(Xm, fit_intercept, vector_view(row_scale), M, dst, n_threads);
        }
        return result;
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("row_scale"), py::arg("M"), py::arg("out") = py::none(),
      py::arg("n_threads") = 0);

  m.def(
      "row_quadratic_forms",
      [](const MatrixArg& X, bool fit_intercept, const Eigen::Ref<const MatrixXd>& A, int n_threads) {
        const Index p = n_params(X, fit_intercept);
        if (A.rows() != p || A.cols() != p) throw std::invalid_argument("A must be p x p");
        py::array_t<double> q(X.rows);
        Eigen::Map<VectorXd> qv(q.mutable_data(), X.rows);
        const DesignMatrix Xm = design_matrix(X, "X");
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          row_quadratic_forms(Xm, fit_intercept, A, qv, n_threads);
        }
        return q;
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("A"), py::arg("n_threads") = 0);

  m.def(
      "loo_loss_change",
      [](int kind, double t, const MatrixArg& X, bool fit_intercept, const DoubleArray& row_scale,
         const Eigen::Ref<const MatrixXd>& U, const DoubleArray& y_test, const DoubleArray& eta_test,
         const py::object& out, int n_threads) {
        const LossSpec spec = make_loss(kind, t);
        const Index n = X.rows, m_test = U.cols();
        require_length(row_scale, n, "row_scale");
        require_length(y_test, m_test, "y_test");
        require_length(eta_test, m_test, "eta_test");
        require_params(X, fit_intercept, U.rows(), "U");
        py::array_t<double> result = output_matrix(out, n, m_test);
        auto dst = mutable_matrix_view(result);
        const DesignMatrix Xm = design_matrix(X, "X");
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          loo_loss_change(spec, Xm, fit_intercept, vector_view(row_scale), U, vector_view(y_test),
                          vector_view(eta_test), dst, n_threads);
        }
        return result;
      },
      py::arg("kind"), py::arg("t"), py::arg("X"), py::arg("fit_intercept"), py::arg("row_scale"), py::arg("U"),
      py::arg("y_test"), py::arg("eta_test"), py::arg("out") = py::none(), py::arg("n_threads") = 0);

  m.def(
      "perturbation_loss",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& d1, const DoubleArray& d2,
         const Eigen::Ref<const MatrixXd>& V, const DoubleArray& w, int n_threads) {
        const Index n = X.rows, d = X.cols, m_test = V.cols();
        require_length(d1, n, "d1");
        require_length(d2, n, "d2");
        require_length(w, d, "w");
        require_params(X, fit_intercept, V.rows(), "V");
        py::array_t<double> result({n, m_test, d});
        double* dst = result.mutable_data();
        const DesignMatrix Xm = design_matrix(X, "X");
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          perturbation_loss(Xm, fit_intercept, vector_view(d1), vector_view(d2), V, vector_view(w), dst, n_threads);
        }
        return result;
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("d1"), py::arg("d2"), py::arg("V"), py::arg("w"),
      py::arg("n_threads") = 0);

  m.def(
      "top_k_scores",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& row_scale, const Eigen::Ref<const MatrixXd>& M,
         Index k, int n_threads, int screening) {
        require_length(row_scale, X.rows, "row_scale");
        require_params(X, fit_intercept, M.rows(), "M");
        if (k < 1) throw std::invalid_argument("k must be >= 1");
        if (screening < -1 || screening > 1) throw std::invalid_argument("screening must be -1 (auto), 0 or 1");
        const DesignMatrix Xm = design_matrix(X, "X");
        TopKResult res;
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          res = top_k_scores(Xm, fit_intercept, vector_view(row_scale), M, k, n_threads,
                             static_cast<Screening>(screening));
        }
        return py::make_tuple(res.helpful_rows, res.helpful_scores, res.harmful_rows, res.harmful_scores);
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("row_scale"), py::arg("M"), py::arg("k"),
      py::arg("n_threads") = 0, py::arg("screening") = -1);
}

}  // namespace fastinfluence::bindings
