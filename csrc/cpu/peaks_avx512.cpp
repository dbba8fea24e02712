// Peak probes for the avx512 variant (peaks.hpp): vfmadd231ps on 16 zmm accumulators (Zen 4 needs
// 4 cycles x 1 512-bit FMA per cycle = 4 chains, Sapphire Rapids and Zen 5 4 x 2 = 8; 16 leaves room),
// and 512-bit loads summed with vpaddd (the load folded into the add: peaks_loops.hpp).
#include "peaks_loops.hpp"
#include "vec_avx512.hpp"

namespace edgecolbert {

EC_COMPUTE_PROBE(fma_f32_avx512, "avx512", "float32", "vfmadd231ps zmm", "vfmadd", 16 * 2, FmaProbe<VecAvx512, 16>);
EC_READ_PROBE(read_avx512, "avx512", "vpaddd zmm, [mem]", LoadSums<vpaddd_from_memory<__m512i>>);

}  // namespace edgecolbert
