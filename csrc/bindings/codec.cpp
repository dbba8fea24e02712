// Bindings for the residual codec and centroid search kernels (filled in by the codec work).
#include "common.hpp"

namespace edgecolbert::bind {
void register_codec(py::module_&) {}
}  // namespace edgecolbert::bind
