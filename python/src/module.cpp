// sinkhorn._C: the compiled half of the Python package. One entry, `solve`, over
// sinkhorn::divergence_with_details (and `check_options`, the library's checks of the options); python/sinkhorn/ turns it into GeomLoss's SamplesLoss and
// sinkhorn.solve. Tensors cross without copies (LibTorch's own pybind11 casters wrap the same
// TensorImpl), the autograd graph built in C++ is the one Python's backward() walks, and the GIL
// is released while the solve runs.
#include <torch/extension.h>

#include <optional>
#include <string>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "sinkhorn/distributed.h"
#include "sinkhorn/divergence.h"
#include "sinkhorn/error.h"
#include "sinkhorn/options.h"
#include "platform/cuda_module_loader.h"
#include "reduce/cuda/cuda_reductions.h"
#include "api/option_table.h"
#include "util/interrupt.h"

namespace py = pybind11;

namespace {

at::Tensor or_undefined(const std::optional<at::Tensor>& t) { return t ? *t : at::Tensor(); }

// A Python value as the option table's kind wants it (the Python layer has checked the types:
// python/sinkhorn/_solve.py). None is "unset".
sinkhorn::api::OptionValue option_value(const sinkhorn::api::OptionSpec& spec, const py::handle& value) {
  using sinkhorn::api::OptionKind;
  if (value.is_none()) return std::monostate{};
  switch (spec.kind) {
    case OptionKind::number:
    case OptionKind::optional_number:
      return value.cast<double>();
    case OptionKind::integer:
    case OptionKind::optional_integer:
      return value.cast<long long>();
    case OptionKind::name:
      return value.cast<std::string>();
    case OptionKind::flag:
      return value.cast<bool>();
  }
  return std::monostate{};
}

// The options both entries take, one keyword per entry of the option table
// (src/api/option_table.h): a dict from the Python layer, every key a table name.
sinkhorn::SinkhornOptions make_options(const py::dict& given) {
  sinkhorn::SinkhornOptions options;
  for (const auto& [key, value] : given) {
    const std::string name = py::str(key);
    const sinkhorn::api::OptionSpec* spec = sinkhorn::api::find_option(name);
    if (spec == nullptr) throw sinkhorn::InternalError("the Python layer passed an option the table lacks: " + name);
    spec->set(options, option_value(*spec, value));
  }
  return options;
}

py::object to_python(const sinkhorn::api::OptionValue& value) {
  return std::visit(
      [](const auto& v) -> py::object {
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::monostate>) {
          return py::none();
        } else {
          return py::cast(v);
        }
      },
      value);
}

// The table for the Python layer: (name, kind, default, doc, applies, sample) per option.
py::list option_table() {
  static const char* const kinds[] = {"number", "optional_number", "integer", "optional_integer", "name", "flag"};
  static const char* const applies[] = {"every_loss", "transport", "sinkhorn"};
  const sinkhorn::SinkhornOptions defaults;
  py::list table;
  for (const sinkhorn::api::OptionSpec& spec : sinkhorn::api::option_table()) {
    table.append(py::make_tuple(spec.name, kinds[static_cast<int>(spec.kind)], to_python(spec.get(defaults)),
                                spec.doc, applies[static_cast<int>(spec.applies)], to_python(spec.sample)));
  }
  return table;
}


// Runs `work` (without the GIL when `release_gil`) and raises the library's exceptions as Python
// errors: sinkhorn::Error as ValueError, its argument's name first ("blur: must be ..."), as the
// Python layer's own checks say it; InternalError as RuntimeError (a bug to report). They go
// through error_already_set, which pybind11's dispatcher catches by type: no exception translator
// and no std::rethrow_exception between a C++ exception and the user.
template <typename Work>
void raising_python_errors(bool release_gil, Work&& work) {
  std::string value_error, internal_error, runtime_error;
  bool interrupted = false;
  {
    std::optional<py::gil_scoped_release> no_gil;
    if (release_gil) no_gil.emplace();
    try {
      work();
    } catch (const sinkhorn::Error& error) {
      value_error = error.argument().empty() ? std::string(error.what()) : error.argument() + ": " + error.problem();
    } catch (const sinkhorn::InternalError& error) {
      internal_error = std::string("sinkhorn internal error (please report): ") + error.what();
    } catch (const sinkhorn::PeerError& error) {
      runtime_error = error.what();  // a lost rank of a sharded solve
    } catch (const sinkhorn::Interrupted&) {
      interrupted = true;  // python_interrupt_pending left Python's exception (KeyboardInterrupt) set
    }
  }
  if (interrupted) throw py::error_already_set();
  if (!value_error.empty()) {
    PyErr_SetString(PyExc_ValueError, value_error.c_str());
    throw py::error_already_set();
  }
  if (!internal_error.empty() || !runtime_error.empty()) {
    PyErr_SetString(PyExc_RuntimeError, (internal_error.empty() ? runtime_error : internal_error).c_str());
    throw py::error_already_set();
  }
}

// What the library reads from the Python layer's options (the round-trip test of the binding).
std::string options_fingerprint(const py::dict& options) {
  std::string fingerprint;
  raising_python_errors(false, [&] { fingerprint = sinkhorn::api::options_fingerprint(make_options(options)); });
  return fingerprint;
}

// The options' names and ranges, checked by the library when a loss object is made (its own
// tables: the Python layer keeps no copy of them), and which of `given` (the keywords set away
// from their defaults) the loss ignores.
void check_options(const py::dict& options, const std::vector<std::string>& given) {
  raising_python_errors(false, [&] {
    const sinkhorn::SinkhornOptions checked = make_options(options);
    sinkhorn::validate(checked);
    sinkhorn::api::check_options_apply(checked.loss, given);
  });
}

py::tuple solve(const std::optional<at::Tensor>& a, const at::Tensor& x, const std::optional<at::Tensor>& b,
                const at::Tensor& y, const py::dict& given_options, const py::object& process_group) {
  // torch.distributed's groups are c10d::ProcessGroup objects bound by PyTorch's own module with
  // an intrusive_ptr holder, which this module shares (same pybind11 internals).
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  if (!process_group.is_none()) {
    try {
      group = process_group.cast<c10::intrusive_ptr<c10d::ProcessGroup>>();
    } catch (const py::cast_error&) {
      PyErr_SetString(PyExc_ValueError,
                      ("process_group: expected a torch.distributed ProcessGroup (e.g. torch.distributed.group.WORLD "
                       "after init_process_group), got " +
                       std::string(py::str(py::type::of(process_group).attr("__name__"))))
                          .c_str());
      throw py::error_already_set();
    }
  }
  sinkhorn::DivergenceResult result;
  sinkhorn::SinkhornOptions options;
  raising_python_errors(false, [&] { options = make_options(given_options); });
  raising_python_errors(true, [&] {  // other Python threads run while we solve
    result = group ? sinkhorn::divergence_with_details(or_undefined(a), x, or_undefined(b), y, options, group)
                   : sinkhorn::divergence_with_details(or_undefined(a), x, or_undefined(b), y, options);
  });
  const sinkhorn::Diagnostics& d = result.diagnostics;
  py::dict diagnostics;
  diagnostics["iterations"] = d.iterations;
  diagnostics["marginal_error"] = d.marginal_error;
  diagnostics["schedule_length"] = d.schedule_length;
  diagnostics["converged"] = d.converged;
  diagnostics["tolerance"] = d.tolerance;
  diagnostics["epsilon"] = d.epsilon;
  diagnostics["diameter"] = d.diameter;
  diagnostics["backend"] = d.backend;
  diagnostics["visited_pairs_fraction"] = d.visited_pairs_fraction;
  diagnostics["truncation_rebuilds"] = d.truncation_rebuilds;
  diagnostics["corrected_sweeps"] = d.corrected_sweeps;
  diagnostics["world_size"] = d.world_size;
  // Undefined tensors (potentials a loss does not use) become None.
  const sinkhorn::Potentials& f = result.potentials;
  return py::make_tuple(result.value, f.f_ab, f.g_ab, f.f_aa, f.g_bb, diagnostics);
}

// The solver's interrupt poll (util/interrupt.h), once per sweep: Python's signal handlers run in
// the main thread, so Ctrl-C raises KeyboardInterrupt there within a sweep, whatever the backend.
// PyErr_CheckSignals does nothing in other threads.
bool python_interrupt_pending() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  sinkhorn::util::set_interrupt_poll(&python_interrupt_pending);
  m.doc() = "sinkhorn's compiled core; use sinkhorn.SamplesLoss and sinkhorn.solve";
  // A user's mistake is a ValueError with the library's message, which names the argument; a
  // broken invariant of the library is a RuntimeError (a bug to report): raising_python_errors.
  m.def("solve", &solve, py::arg("a"), py::arg("x"), py::arg("b"), py::arg("y"), py::arg("options"),
        py::arg("process_group") = py::none(),
        "The loss between (a, x) and (b, y) with its potentials and diagnostics: "
        "(value, f_ab, g_ab, f_aa, g_bb, diagnostics). options: a dict keyed by option_table()'s names.");
  m.def("check_options", &check_options, py::arg("options"), py::arg("given"),
        "Raises ValueError naming the first option the library refuses (names, ranges, and options the loss "
        "ignores among `given`).");
  m.def("option_table", &option_table,
        "The solve's options, declared once in the library: (name, kind, default, doc, applies, sample) each.");
  m.def("options_fingerprint", &options_fingerprint, py::arg("options"),
        "Every option as the library read it from `options`, one name=value line each.");
  m.attr("__version__") = SINKHORN_VERSION;
  // The CUDA module (libsinkhorn_cuda.so beside this extension, or in the build tree): PyTorch has
  // loaded its CUDA half already, so loading ours now costs little and tells the truth early.
  std::string cuda_problem;
  m.attr("cuda_module_built") = sinkhorn::platform::cuda_module_built();
  m.attr("cuda_kernels") = sinkhorn::reduce::cuda::load_reductions(&cuda_problem) != nullptr;
  m.attr("cuda_kernels_problem") = cuda_problem;
}
