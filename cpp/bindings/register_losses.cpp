// Elementwise loss terms, exposed for the finite-difference tests and for
// callers that build their own kernels.
#include "bindings.hpp"

namespace fastinfluence::bindings {

void register_losses(py::module_& m) {
  m.def(
      "loss_terms",
      [](int kind, double t, const DoubleArray& y, const DoubleArray& eta) {
        require_length(eta, y.size(), "eta");
        const LossSpec spec = make_loss(kind, t);
        py::array_t<double> value(y.size()), d1(y.size()), d2(y.size());
        auto yv = vector_view(y), ev = vector_view(eta);
        double *pv = value.mutable_data(), *p1 = d1.mutable_data(), *p2 = d2.mutable_data();
        visit_loss(spec, [&](const auto& loss) {
          for (Index i = 0; i < yv.size(); ++i) {
            pv[i] = loss.value(yv[i], ev[i]);
            p1[i] = loss.d1(yv[i], ev[i]);
            p2[i] = loss.d2(yv[i], ev[i]);
          }
        });
        return py::make_tuple(value, d1, d2);
      },
      py::arg("kind"), py::arg("t"), py::arg("y"), py::arg("eta"));

  m.def(
      "loss_difference",
      [](int kind, double t, const DoubleArray& y, const DoubleArray& eta, const DoubleArray& delta) {
        require_length(eta, y.size(), "eta");
        require_length(delta, y.size(), "delta");
        const LossSpec spec = make_loss(kind, t);
        py::array_t<double> out(y.size());
        auto yv = vector_view(y), ev = vector_view(eta), dv = vector_view(delta);
        double* po = out.mutable_data();
        visit_loss(spec, [&](const auto& loss) {
          for (Index i = 0; i < yv.size(); ++i) po[i] = loss.difference(yv[i], ev[i], dv[i]);
        });
        return out;
      },
      py::arg("kind"), py::arg("t"), py::arg("y"), py::arg("eta"), py::arg("delta"));
}

}  // namespace fastinfluence::bindings
