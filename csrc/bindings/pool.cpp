// pybind11: hierarchical token pooling (PyLate's pool_factor): validate, release the GIL, call, return.
#include "common.hpp"
#include "edgecolbert/pool.hpp"

namespace edgecolbert::bind {

void register_pool(py::module_& m) {
  m.def(
      "pool_tokens",
      [](const py::array& doc_tokens, const py::handle& doc_offsets, int64_t pool_factor, int64_t protected_tokens,
         const py::object& num_threads, bool return_rows) -> py::tuple {
        const char* fn = "pool_tokens";
        require_ndim(doc_tokens, 2, fn, "doc_tokens", "[T, dim]");
        if (!(doc_tokens.dtype().kind() == 'f' && doc_tokens.itemsize() == 4))
          type_error(cat(fn, ": doc_tokens must be float32, got ", dtype_str(doc_tokens)));
        require_readable(doc_tokens, fn, "doc_tokens");
        auto tokens = ensure_aligned<float, 0>(doc_tokens);
        const int64_t T = tokens.shape(0), dim = tokens.shape(1);
        if (dim < 1) value_error(cat(fn, ": doc_tokens must have dim >= 1, got shape ", shape_str(doc_tokens)));
        auto off = check_offsets(doc_offsets, T, "tokens", fn);
        const int64_t n = off.shape(0) - 1;
        const int64_t* o = off.data();
        if (pool_factor < 1) value_error(cat(fn, ": pool_factor must be >= 1, got ", pool_factor));
        if (protected_tokens < 0) value_error(cat(fn, ": protected_tokens must be >= 0, got ", protected_tokens));
        const int threads = resolve_threads(num_threads, fn);

        const int64_t capacity = pooled_rows_capacity(o, n, pool_factor, protected_tokens);
        py::array_t<float> out({capacity, dim});
        py::array_t<int64_t> out_offsets(n + 1);
        py::array_t<int64_t> rows(return_rows ? T : 0);
        {
          py::gil_scoped_release released;
          pool_tokens(tokens.data(), dim, o, n, pool_factor, protected_tokens, out.mutable_data(),
                      out_offsets.mutable_data(), return_rows ? rows.mutable_data() : nullptr, threads);
        }
        py::object pooled = out;
        const int64_t total = out_offsets.data()[n];
        if (total < capacity)  // fcluster formed fewer clusters than asked somewhere: a view of the packed rows
          pooled = out[py::slice(0, total, 1)];
        if (return_rows) return py::tuple(py::make_tuple(pooled, out_offsets, rows));
        return py::tuple(py::make_tuple(pooled, out_offsets));
      },
      py::arg("doc_tokens"), py::arg("doc_offsets"), py::arg("pool_factor"), py::arg("protected_tokens") = 1,
      py::arg("num_threads") = py::none(), py::arg("return_rows") = false);
}

}  // namespace edgecolbert::bind
