// The multinomial (softmax) loss of K classes: its fused passes, Gram products and scoring
// products (multinomial.hpp, multinomial_scoring.hpp). Per-row arrays (P, R, eta) are (n, K)
// C-order float64; class codes are checked here, since a code outside 0..K-1 would index
// outside a row.
#include <cmath>

#include "bindings.hpp"

namespace fastinfluence::bindings {
namespace {

// An (rows, K) C-order float64 array (converted once if needed), K >= 1.
Eigen::Map<const RowMatrixXd> per_row(const DoubleArray& a, Index rows, const char* name) {
  if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) < 1)
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(rows) + ", K)");
  return Eigen::Map<const RowMatrixXd>(a.data(), rows, a.shape(1));
}

void require_classes(const Eigen::Map<const RowMatrixXd>& a, Index K, const char* name) {
  if (a.cols() != K)
    throw std::invalid_argument(std::string(name) + " must have " + std::to_string(K) + " columns (one per class)");
}

// Class codes: integers in [0, K).
void require_codes(const DoubleArray& y, Index n, Index K, const char* name) {
  require_length(y, n, name);
  const double* v = y.data();
  for (Index i = 0; i < n; ++i)
    if (!(v[i] >= 0.0 && v[i] < static_cast<double>(K) && v[i] == std::floor(v[i])))
      throw std::invalid_argument(std::string(name) + " must hold class codes in 0.." + std::to_string(K - 1) +
                                  ", found " + std::to_string(v[i]));
}

void require_class_count(Index K) {
  if (K < 2) throw std::invalid_argument("n_classes must be >= 2");
}

// y one class code per row of X, theta K q entries.
void require_multinomial_problem(const MatrixArg& X, const DoubleArray& y, const DoubleArray& theta, bool fit_intercept,
                                 Index K) {
  require_class_count(K);
  require_codes(y, X.rows, K, "y");
  require_length(theta, K * n_params(X, fit_intercept), "theta");
}

// and the weights (empty: all ones), one per row
void require_multinomial_problem(const MatrixArg& X, const DoubleArray& y, const DoubleArray& weights,
                                 const DoubleArray& theta, bool fit_intercept, Index K) {
  require_multinomial_problem(X, y, theta, fit_intercept, K);
  if (weights.size() != 0) require_length(weights, X.rows, "sample_weight");
}

py::array_t<double> new_matrix(Index rows, Index cols) { return py::array_t<double>({rows, cols}); }

}  // namespace

void register_multinomial(py::module_& m) {
  m.def(
      "multinomial_row_derivatives",
      [](const MatrixArg& X, const DoubleArray& y, const DoubleArray& theta, bool fit_intercept, Index n_classes,
         int n_threads) {
        const Index n = X.rows, K = n_classes;
        require_multinomial_problem(X, y, theta, fit_intercept, K);
        py::array_t<double> eta = new_matrix(n, K), value(n), d1 = new_matrix(n, K), d2 = new_matrix(n, K);
        Eigen::Map<RowMatrixXd> e(eta.mutable_data(), n, K), g(d1.mutable_data(), n, K), h(d2.mutable_data(), n, K);
        Eigen::Map<VectorXd> v(value.mutable_data(), n);
        const DesignMatrix Xm = design_matrix(X, "X");
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          multinomial_row_derivatives(Xm, vector_view(y), vector_view(theta), fit_intercept, K, e, v, g, h, n_threads);
        }
        return py::make_tuple(eta, value, d1, d2);
      },
      py::arg("X"), py::arg("y"), py::arg("theta"), py::arg("fit_intercept"), py::arg("n_classes"),
      py::arg("n_threads") = 0);

  // (value, gradient | None, Hessian | None, P - Y | None, P | None): the (n, K) per-row
  // arrays come from the same pass when want_rows.
  m.def(
      "multinomial_evaluate",
      [](const MatrixArg& X, const DoubleArray& y, const DoubleArray& weights, const DoubleArray& theta,
         bool fit_intercept, double l2, Index n_classes, bool want_gradient, bool want_hessian, int n_threads,
         bool want_rows) {
        const Index K = n_classes;
        require_multinomial_problem(X, y, weights, theta, fit_intercept, K);
        py::object d1 = py::none(), d2 = py::none();
        MultinomialRowsOut rows;
        if (want_rows) {
          py::array_t<double> d1_array = new_matrix(X.rows, K), d2_array = new_matrix(X.rows, K);
          rows = {d1_array.mutable_data(), d2_array.mutable_data()};
          d1 = std::move(d1_array);
          d2 = std::move(d2_array);
        }
        const DesignMatrix Xm = design_matrix(X, "X");
        const Problem<DesignMatrix> prob{Xm, vector_view(y), vector_view(weights), fit_intercept, l2};
        Evaluation ev;
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
          ev = multinomial_evaluate(prob, K, vector_view(theta), Want{want_gradient, want_hessian}, n_threads, rows);
        }
        py::object gradient = py::none(), hessian = py::none();
        if (want_gradient) gradient = py::cast(std::move(ev.gradient));
        if (want_hessian) hessian = py::cast(std::move(ev.hessian));
        return py::make_tuple(ev.value, gradient, hessian, d1, d2);
      },
      py::arg("X"), py::arg("y"), py::arg("weights"), py::arg("theta"), py::arg("fit_intercept"), py::arg("l2"),
      py::arg("n_classes"), py::arg("want_gradient"), py::arg("want_hessian"), py::arg("n_threads"),
      py::arg("want_rows") = false);

  m.def(
      "multinomial_hessian_vector_product",
      [](const MatrixArg& X, const DoubleArray& y, const DoubleArray& weights, const DoubleArray& theta,
         bool fit_intercept, double l2, Index n_classes, const Eigen::Ref<const MatrixXd>& V, int n_threads) {
        const Index K = n_classes;
        require_multinomial_problem(X, y, weights, theta, fit_intercept, K);
        if (V.rows() != K * n_params(X, fit_intercept))
          throw std::invalid_argument("V must have one row per parameter");
        const DesignMatrix Xm = design_matrix(X, "X");
        const Problem<DesignMatrix> prob{Xm, vector_view(y), vector_view(weights), fit_intercept, l2};
        py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
        return multinomial_hessian_vector_product(prob, K, vector_view(theta), V, n_threads);
      },
      py::arg("X"), py::arg("y"), py::arg("weights"), py::arg("theta"), py::arg("fit_intercept"), py::arg("l2"),
      py::arg("n_classes"), py::arg("V"), py::arg("n_threads") = 0);

  m.def(
      "multinomial_gram_product",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& c, const DoubleArray& P, double l2,
         const Eigen::Ref<const MatrixXd>& V, int n_threads) {
        require_length(c, X.rows, "c");
        const auto Pv = per_row(P, X.rows, "P");
        if (V.rows() != Pv.cols() * n_params(X, fit_intercept))
          throw std::invalid_argument("V must have one row per parameter (K q)");
        const DesignMatrix Xm = design_matrix(X, "X");
        py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
        return multinomial_gram_product(Xm, fit_intercept, vector_view(c), Pv, l2, V, n_threads);
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("c"), py::arg("P"), py::arg("l2"), py::arg("V"),
      py::arg("n_threads") = 0);

  m.def(
      "multinomial_gram_diagonal",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& c, const DoubleArray& P, int n_threads) {
        require_length(c, X.rows, "c");
        const auto Pv = per_row(P, X.rows, "P");
        const DesignMatrix Xm = design_matrix(X, "X");
        py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
        return multinomial_gram_diagonal(Xm, fit_intercept, vector_view(c), Pv, n_threads);
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("c"), py::arg("P"), py::arg("n_threads") = 0);

  m.def(
      "multinomial_scaled_row_products",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& R, const Eigen::Ref<const MatrixXd>& M,
         const py::object& out, int n_threads) {
        const auto Rv = per_row(R, X.rows, "R");
        if (M.rows() != Rv.cols() * n_params(X, fit_intercept))
          throw std::invalid_argument("M must have one row per parameter (K q)");
        py::array_t<double> result = output_matrix(out, X.rows, M.cols());
        auto dst = mutable_matrix_view(result);
        const DesignMatrix Xm = design_matrix(X, "X");
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          multinomial_scaled_row_products(Xm, fit_intercept, Rv, M, dst, n_threads);
        }
        return result;
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("R"), py::arg("M"), py::arg("out") = py::none(),
      py::arg("n_threads") = 0);

  m.def(
      "multinomial_top_k_scores",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& R, const Eigen::Ref<const MatrixXd>& M, Index k,
         int n_threads, int screening) {
        const auto Rv = per_row(R, X.rows, "R");
        if (M.rows() != Rv.cols() * n_params(X, fit_intercept))
          throw std::invalid_argument("M must have one row per parameter (K q)");
        if (k < 1) throw std::invalid_argument("k must be >= 1");
        if (screening < -1 || screening > 1) throw std::invalid_argument("screening must be -1 (auto), 0 or 1");
        const DesignMatrix Xm = design_matrix(X, "X");
        TopKResult res;
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          res = multinomial_top_k_scores(Xm, fit_intercept, Rv, M, k, n_threads, static_cast<Screening>(screening));
        }
        return py::make_tuple(res.helpful_rows, res.helpful_scores, res.harmful_rows, res.harmful_scores);
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("R"), py::arg("M"), py::arg("k"), py::arg("n_threads") = 0,
      py::arg("screening") = -1);

  m.def(
      "multinomial_row_quadratic_forms",
      [](const MatrixArg& X, bool fit_intercept, const Eigen::Ref<const MatrixXd>& A, Index n_classes, int n_threads) {
        const Index K = n_classes;
        require_class_count(K);
        if (A.cols() != K * n_params(X, fit_intercept) || A.rows() < 1)
          throw std::invalid_argument("A must be r x p (p = n_classes q)");
        py::array_t<double> S({X.rows, K, K});
        double* dst = S.mutable_data();
        const DesignMatrix Xm = design_matrix(X, "X");
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          multinomial_row_quadratic_forms(Xm, fit_intercept, A, K, dst, n_threads);
        }
        return S;
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("A"), py::arg("n_classes"), py::arg("n_threads") = 0);

  m.def(
      "multinomial_loo_loss_change",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& R, const Eigen::Ref<const MatrixXd>& U,
         const DoubleArray& y_test, const DoubleArray& eta_test, const py::object& out, int n_threads) {
        const auto Rv = per_row(R, X.rows, "R");
        const Index K = Rv.cols();
        require_class_count(K);
        if (y_test.ndim() != 1) throw std::invalid_argument("y_test must be 1-D");
        const Index m_test = y_test.shape(0);
        require_codes(y_test, m_test, K, "y_test");
        const auto eta = per_row(eta_test, m_test, "eta_test");
        require_classes(eta, K, "eta_test");
        if (U.rows() != K * n_params(X, fit_intercept) || U.cols() != m_test * K)
          throw std::invalid_argument("U must be p x (m K): one row per parameter, K columns per test point");
        py::array_t<double> result = output_matrix(out, X.rows, m_test);
        auto dst = mutable_matrix_view(result);
        const DesignMatrix Xm = design_matrix(X, "X");
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by this frame
          multinomial_loo_loss_change(Xm, fit_intercept, Rv, U, vector_view(y_test), eta, dst, n_threads);
        }
        return result;
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("R"), py::arg("U"), py::arg("y_test"), py::arg("eta_test"),
      py::arg("out") = py::none(), py::arg("n_threads") = 0);
}

}  // namespace fastinfluence::bindings
