// Residual codec, AVX2 + FMA + F16C (codec_kernels.hpp, CodecF32): 8-lane ymm registers; decompression
// through the byte table, the centroid added 8 dims at a time, float16 out by F16C; compressed MaxSim
// decodes 6 tokens a tile and scores them with the AVX2 MaxSim tile (2 row blocks x 6 tokens).
#include "codec_kernels.hpp"
#include "vec_avx2.hpp"

namespace edgecolbert {

const CodecOps codec_ops_avx2 = codec_kernels::CodecF32<VecAvx2, 6>::ops();

}  // namespace edgecolbert
