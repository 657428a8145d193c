// fastinfluence._cpu_features: which SIMD instruction sets this CPU and its operating system
// support, asked once at import by fastinfluence._native to choose the variant of the compiled
// core to load. Compiled with the baseline flags (it must run on every CPU), with the Python C
// API only, so it costs a second of the build. GCC's and Clang's __builtin_cpu_supports read
// CPUID and, for the AVX families, the operating system's XSAVE state (XGETBV): a CPU with
// AVX-512 under a kernel that does not save the 512-bit registers reports no AVX-512.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace {

PyObject* supported(PyObject* /*module*/, PyObject* /*unused*/) {
  __builtin_cpu_init();
  struct Feature {
    const char* name;
    bool present;
  };
  const Feature features[] = {
      {"sse4.2", __builtin_cpu_supports("sse4.2") != 0},     {"popcnt", __builtin_cpu_supports("popcnt") != 0},
      {"avx", __builtin_cpu_supports("avx") != 0},           {"avx2", __builtin_cpu_supports("avx2") != 0},
      {"fma", __builtin_cpu_supports("fma") != 0},           {"avx512f", __builtin_cpu_supports("avx512f") != 0},
      {"avx512cd", __builtin_cpu_supports("avx512cd") != 0}, {"avx512bw", __builtin_cpu_supports("avx512bw") != 0},
      {"avx512dq", __builtin_cpu_supports("avx512dq") != 0}, {"avx512vl", __builtin_cpu_supports("avx512vl") != 0},
  };
  PyObject* result = PyDict_New();
  if (result == nullptr) return nullptr;
  for (const Feature& feature : features) {
    if (PyDict_SetItemString(result, feature.name, feature.present ? Py_True : Py_False) != 0) {
      Py_DECREF(result);
      return nullptr;
    }
  }
  return result;
}

PyMethodDef methods[] = {
    {"supported", supported, METH_NOARGS,
     "supported() -> dict: each SIMD instruction set's name and whether this CPU and OS support it."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT,
                      "_cpu_features",
                      "The CPU's SIMD instruction sets (private; see fastinfluence.show_config()).",
                      -1,
                      methods,
                      nullptr,
                      nullptr,
                      nullptr,
                      nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__cpu_features() { return PyModule_Create(&module); }
