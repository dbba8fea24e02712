// Peak probes for the avx2 variant (peaks.hpp): vfmadd231ps on 12 ymm accumulators (2 FMA pipes x 4
// cycles = 8 chains on Zen 3/4 and Alder Lake; 16 ymm registers hold 12 plus the operand), and 256-bit
// loads summed with vpaddd (the load folded into the add: peaks_loops.hpp).
#include "peaks_loops.hpp"
#include "vec_avx2.hpp"

namespace edgecolbert {

EC_COMPUTE_PROBE(fma_f32_avx2, "avx2", "float32", "vfmadd231ps ymm", "vfmadd", 8 * 2, FmaProbe<VecAvx2, 12>);
EC_READ_PROBE(read_avx2, "avx2", "vpaddd ymm, [mem]", LoadSums<vpaddd_from_memory<__m256i>>);

}  // namespace edgecolbert
