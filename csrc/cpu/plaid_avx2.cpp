// PLAID's stage loops (plaid_kernels.hpp) built with this file's ISA flags.
#include "plaid_kernels.hpp"

namespace edgecolbert {

const PlaidOps plaid_ops_avx2{plaid_detail::interact, plaid_detail::probe_rows};

}  // namespace edgecolbert
