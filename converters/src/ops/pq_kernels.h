// Product-quantized kernels (Stock et al. 2020, "And the Bit Goes Down"), apart from TFLite.
//
// A kernel of R = C_in*kh*kw rows (order C_in, kh, kw) and C_out columns is cut into
// blocks of d rows; block b of column j is codebook[codes[b][j]] (k centroids of d floats).
//
// Codes in the file: a little-endian bit stream, ceil(log2 k) bits per code, codes in the
// order codes[b][j] (j fastest). They are unpacked once, at Prepare.
//
// Dense layer y = x W + bias, with the lookup-table kernel (batch rows one by one):
//   T[b][c] = sum_t x[b*d + t] * codebook[c][t]     (k dot products per input block, once)
//   y[j]    = bias[j] + sum_b T[b][codes[b][j]]      (one table lookup per subvector)
// so the work is C_in*k multiply-adds plus R/d*C_out lookups, instead of C_in*C_out
// multiply-adds over C_in*C_out floats read from memory.
#ifndef TFCOMPRESS_OPS_PQ_KERNELS_H_
#define TFCOMPRESS_OPS_PQ_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/binary_conv.h"

namespace tfcompress {

// IEEE half (bits) -> float, exact for every value including subnormals, inf and NaN.
float HalfToFloat(uint16_t half);

// Unpacks `count` codes of `bits` bits from `packed` (`packed_bytes` long) into `codes`.
// Returns false when the stream is too short or a code is >= n_centroids.
bool UnpackCodes(const uint8_t* packed, size_t packed_bytes, int bits, int64_t count, int n_centroids,
                 std::vector<uint16_t>* codes);

// Decoded kernel in TFLite's filter layout [C_out][kh][kw][C_in] (a dense kernel is kh = kw = 1).
void DecodeKernelOhwi(const uint16_t* codes, const float* codebook, int block_size, int kernel_h, int kernel_w,
                      int in_channels, int out_channels, float* output);

// Portable reference of the dense layer, straight from the definition (the test oracle).
void ReferencePQDense(const float* input, int64_t rows, int in_features, int out_features, const uint16_t* codes,
                      const float* codebook, int n_centroids, int block_size, const float* bias,
                      Activation activation, float* output);

// The lookup-table dense layer, prepared once: codes [block][C_out] (uint8 when k <= 256,
// else uint16), codebook transposed [d][k]. Table and lookups are fused per block: table row b
// (k floats) is built and at once looked up by all C_out outputs, so it never leaves L1 (with
// all tables built first, k = 2048 and 1024 blocks make an 8 MB table that is written to and
// read back from L3 on every invoke). Threads split the blocks; each sums into its own copy
// of y (C_out floats), added up at the end.
class PQDenseKernel {
 public:
  // `variant`: "auto" (best for this CPU, or $TFCOMPRESS_KERNEL), "avx512", "avx2" or
  // "scalar". Returns an error message, or "" on success.
  std::string Prepare(const uint16_t* codes, const float* codebook, const float* bias, int n_centroids,
                      int block_size, int in_features, int out_features, const std::string& variant);
  void Run(const float* input, int64_t rows, Activation activation, float* output, int threads);
  const char* variant() const { return variant_; }

  // Internal, public for the thread-pool trampoline: the blocks of part `part` of `parts`
  // into y (part 0: y = bias + its sum; others: their own partial sums).
  void RunPart(const float* x, int part, int parts, float* y);

 private:
  void LookupBlock(const float* table, int block, float* y) const;

  int k_ = 0, d_ = 0, in_ = 0, out_ = 0, blocks_ = 0;
  bool narrow_ = true;
  const char* variant_ = "scalar";
  int level_ = 0;  // 0 scalar, 1 avx2, 2 avx512
  std::vector<uint8_t> codes8_;
  std::vector<uint16_t> codes16_;
  std::vector<float> codebook_t_;  // [d][k]
  std::vector<float> bias_;        // [C_out]
  std::vector<float> tables_;      // [parts][k]: one table row per part
  std::vector<float> partials_;    // [parts - 1][C_out]
};

// Names of the dense variants usable on this CPU, best first ("avx512,avx2,scalar").
std::string PQDenseVariants();

}  // namespace tfcompress

#endif  // TFCOMPRESS_OPS_PQ_KERNELS_H_
