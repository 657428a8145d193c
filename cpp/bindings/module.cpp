// fastinfluence._core_<variant>: the private compiled module, one per SIMD variant (FASTINFLUENCE_MODULE,
// set by CMakeLists.txt; fastinfluence._native loads one as fastinfluence._core). The public API lives in
// python/fastinfluence; the stable low-level API in fastinfluence.kernels.
#include "bindings.hpp"

#ifndef FASTINFLUENCE_MODULE
#define FASTINFLUENCE_MODULE _core_baseline
#endif

namespace fastinfluence::bindings {
namespace {

// Installed as the core's interrupt hook: called between row chunks on the
// thread that entered the kernel (with the GIL released), it briefly takes
// the GIL back to run pending signal handlers. Whatever a handler raised
// (KeyboardInterrupt for Ctrl-C, a user's own exception from a SIGALRM
// timeout) leaves the kernel as error_already_set and reaches Python as
// itself.
bool python_interrupt_requested() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  return false;
}

}  // namespace
}  // namespace fastinfluence::bindings

PYBIND11_MODULE(FASTINFLUENCE_MODULE, m) {
  namespace fb = fastinfluence::bindings;
  m.doc() = "Private compiled core of fastinfluence; use fastinfluence.kernels instead.";
  fastinfluence::interrupt_hook() = &fb::python_interrupt_requested;
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fastinfluence::Interrupted&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    }
  });

  m.def("build_info", [] {
    pybind11::dict info;
    info["eigen_version"] = fastinfluence::eigen_version();
    info["openmp"] = fastinfluence::openmp_enabled();
    info["max_threads"] = fastinfluence::max_threads();
    info["simd"] = fastinfluence::simd_instruction_sets();
    info["instruction_sets"] = fastinfluence::compiled_instruction_sets();
#ifdef FASTINFLUENCE_BUILD_TYPE
    info["build_type"] = FASTINFLUENCE_BUILD_TYPE;
#else
    info["build_type"] = "unknown";
#endif
#ifdef NDEBUG
    info["assertions"] = false;
#else
    info["assertions"] = true;
#endif
#ifdef FASTINFLUENCE_SANITIZED
    info["sanitizers"] = "address,undefined";
#else
    info["sanitizers"] = "";
#endif
    // Every layout is read directly: the kernels convert blocks as they go (problem.hpp).
    info["layouts"] = "all";
#ifdef FASTINFLUENCE_VARIANT
    info["variant"] = FASTINFLUENCE_VARIANT;
#else
    info["variant"] = "unknown";
#endif
    return info;
  });

  fb::register_losses(m);
  fb::register_kernels(m);
  fb::register_scoring(m);
  fb::register_solvers(m);
  fb::register_multinomial(m);
}
