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
        loss_terms(spec, y.data(), eta.data(), y.size(), value.mutable_data(), d1.mutable_data(), d2.mutable_data());
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
        loss_differences(spec, y.data(), eta.data(), delta.data(), y.size(), out.mutable_data());
        return out;
      },
      py::arg("kind"), py::arg("t"), py::arg("y"), py::arg("eta"), py::arg("delta"));
}

}  // namespace fastinfluence::bindings
