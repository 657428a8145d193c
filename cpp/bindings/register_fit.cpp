// Newton fit and the direct (Cholesky) solver.
#include "bindings.hpp"

namespace fastinfluence::bindings {

void register_fit(py::module_& m) {
  m.def(
      "fit_newton",
      [](int kind, double t, const MatrixArg& X, const DoubleArray& y, const DoubleArray& weights,
         const DoubleArray& theta0, bool fit_intercept, double l2, double tol, int max_iter, int n_threads,
         const std::string& method) {
        if (method != "newton" && method != "newton_cg")
          throw std::invalid_argument("method must be 'newton' or 'newton_cg'");
        const LossSpec spec = make_loss(kind, t);
        require_problem(X, y, weights, theta0, fit_intercept, "theta0");
        FitOptions options{tol, max_iter, n_threads};
        FitResult res = with_matrix(X, "X", [&](const auto& Xm) {
          using XType = std::decay_t<decltype(Xm)>;
          Problem<XType> prob{Xm, vector_view(y), vector_view(weights), fit_intercept, l2};
          py::gil_scoped_release release;  // safe: views of arrays owned by the caller's frame
          return method == "newton" ? fit_newton(spec, prob, vector_view(theta0), options)
                                    : fit_newton_cg(spec, prob, vector_view(theta0), options);
        });
        py::dict out;
        out["theta"] = py::cast(std::move(res.theta));
        out["n_iter"] = res.n_iter;
        out["grad_norm"] = res.grad_norm;
        out["grad_norm_scale"] = res.grad_norm_scale;
        out["objective"] = res.objective;
        out["converged"] = res.converged;
        out["message"] = res.message;
        return out;
      },
      py::arg("kind"), py::arg("t"), py::arg("X"), py::arg("y"), py::arg("weights"), py::arg("theta0"),
      py::arg("fit_intercept"), py::arg("l2"), py::arg("tol"), py::arg("max_iter"), py::arg("n_threads"), py::arg("method") = "newton");

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
