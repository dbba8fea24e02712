// Residual codec, AArch64 Advanced SIMD (codec_kernels.hpp, CodecF32): 4-lane q registers;
// decompression through the byte table, the centroid added 4 dims at a time, float16 out by FCVTN;
// compressed MaxSim decodes 8 tokens a tile and scores them with the NEON MaxSim tile (2 row blocks x
// 8 tokens).
#include "codec_kernels.hpp"
#include "vec_neon.hpp"

namespace edgecolbert {

const CodecOps codec_ops_neon = codec_kernels::CodecF32<VecNeon, 8>::ops();

}  // namespace edgecolbert
