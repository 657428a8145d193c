// The solvers: the dense Cholesky factorisation, and the matrix-free CG and
// LiSSA over the Hessian-vector product (assembled in the core, solvers.hpp)
// with the pieces they are built from (curvature weights, Gram products, diagonal).
#include "bindings.hpp"

namespace fastinfluence::bindings {

void register_solvers(py::module_& m) {
  m.def(
      "curvature_weights",
      [](int kind, double t, const MatrixArg& X, const DoubleArray& y, const DoubleArray& weights,
         const DoubleArray& theta, bool fit_intercept, int n_threads) {
        const LossSpec spec = make_loss(kind, t);
        require_problem(X, y, weights, theta, fit_intercept);
        const DesignMatrix Xm = design_matrix(X, "X");
        const Problem<DesignMatrix> prob{Xm, vector_view(y), vector_view(weights), fit_intercept, 0.0};
        py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
        return curvature_weights(spec, prob, vector_view(theta), n_threads);
      },
      py::arg("kind"), py::arg("t"), py::arg("X"), py::arg("y"), py::arg("weights"), py::arg("theta"),
      py::arg("fit_intercept"), py::arg("n_threads") = 0);

  m.def(
      "regularised_gram_product",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& c, double l2, const Eigen::Ref<const MatrixXd>& V,
         int n_threads) {
        require_length(c, X.rows, "c");
        require_params(X, fit_intercept, V.rows(), "V");
        const DesignMatrix Xm = design_matrix(X, "X");
        py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
        return regularised_gram_product(Xm, fit_intercept, vector_view(c), l2, V, n_threads);
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("c"), py::arg("l2"), py::arg("V"), py::arg("n_threads") = 0);

  m.def(
      "gram_diagonal",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& c, int n_threads) {
        require_length(c, X.rows, "c");
        const DesignMatrix Xm = design_matrix(X, "X");
        py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
        return gram_diagonal(Xm, fit_intercept, vector_view(c), n_threads);
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("c"), py::arg("n_threads") = 0);

  m.def(
      "cg_solve",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& c, double l2, double damping, const MatrixXd& B,
         double tol, int max_iter, const std::optional<MatrixXd>& x0, bool precondition, int n_threads) {
        require_length(c, X.rows, "c");
        require_params(X, fit_intercept, B.rows(), "B");
        if (x0 && (x0->rows() != B.rows() || x0->cols() != B.cols()))
          throw std::invalid_argument("x0 must have the shape of B");
        const DesignMatrix Xm = design_matrix(X, "X");
        CGResult res;
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
          res = cg_solve(Xm, fit_intercept, vector_view(c), l2, damping, B, x0 ? *x0 : MatrixXd(), precondition,
                         CGOptions{tol, max_iter}, n_threads);
        }
        return py::make_tuple(res.solution, res.iterations, res.residual);
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("c"), py::arg("l2"), py::arg("damping"), py::arg("B"),
      py::arg("tol"), py::arg("max_iter"), py::arg("x0") = py::none(), py::arg("precondition") = true,
      py::arg("n_threads") = 0);

  m.def(
      "lissa_solve",
      [](const MatrixArg& X, bool fit_intercept, const DoubleArray& c, double l2, double damping, const MatrixXd& B,
         double scale, int depth, int repeats, Index batch_size, std::uint64_t seed) {
        require_length(c, X.rows, "c");
        require_params(X, fit_intercept, B.rows(), "B");
        if (!(scale > 0.0) || depth < 1 || repeats < 1 || batch_size < 1)
          throw std::invalid_argument("scale must be > 0 and depth, repeats, batch_size >= 1");
        const DesignMatrix Xm = design_matrix(X, "X");
        LissaResult res;
        {
          py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
          res = lissa_solve(Xm, fit_intercept, vector_view(c), l2, B,
                            LissaOptions{scale, damping, depth, repeats, batch_size, seed});
        }
        return py::make_tuple(res.solution, res.diverged);
      },
      py::arg("X"), py::arg("fit_intercept"), py::arg("c"), py::arg("l2"), py::arg("damping"), py::arg("B"),
      py::arg("scale"), py::arg("depth"), py::arg("repeats"), py::arg("batch_size"), py::arg("seed"));

  py::class_<CholeskySolver>(m, "CholeskySolver")
      .def(py::init([](const Eigen::Ref<const MatrixXd>& H, double damping) {
             if (H.rows() != H.cols()) throw std::invalid_argument("H must be square");
             py::gil_scoped_release release;  // safe: H is a view kept alive by the caller
             return new CholeskySolver(H, damping);
           }),
           py::arg("H"), py::arg("damping") = 0.0)
      .def_property_readonly("ok", &CholeskySolver::ok)
      .def_property_readonly("reciprocal_condition", &CholeskySolver::reciprocal_condition)
      .def_property_readonly("size", &CholeskySolver::size)
      .def(
          "solve",
          [](const CholeskySolver& self, const Eigen::Ref<const MatrixXd>& B) {
            if (B.rows() != self.size()) throw std::invalid_argument("B must have one row per parameter");
            py::gil_scoped_release release;  // safe: B is a view kept alive by the caller
            return MatrixXd(self.solve(B));
          },
          py::arg("B"))
      .def("inverse_factor", [](const CholeskySolver& self) {
        py::gil_scoped_release release;  // safe: touches only the solver's own storage
        return self.inverse_factor();
      });
}

}  // namespace fastinfluence::bindings
