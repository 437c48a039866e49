// AVX2 kernel: four output channels per 256-bit register; popcount with the nibble lookup
// table (Mula, Kurz, Lemire 2018, "Faster Population Counts Using AVX2 Instructions") and
// VPSADBW to sum the byte counts into 64-bit lanes.
#include <immintrin.h>

#include "kernels/conv_driver.h"
#include "kernels/kernel_sets.h"

namespace tfcompress {
namespace {

inline __m256i PopcountBytes(__m256i v) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                                         2, 3, 2, 3, 3, 4);
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(v, low_nibbles);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibbles);
  return _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
}

struct Avx2Micro {
  static constexpr bool kHasInterior = false;
  template <int kBlocks>
  static inline void Block(const uint64_t* const* tap_inputs, const int* tap_ids, int taps, int words,
                           const uint64_t* weights, int ocp, int c0, int32_t* popcounts) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i sum[kBlocks];
    for (int j = 0; j < kBlocks; ++j) sum[j] = zero;
    for (int t = 0; t < taps; ++t) {
      const uint64_t* x = tap_inputs[t];
      const uint64_t* w = weights + static_cast<int64_t>(tap_ids[t]) * words * ocp + c0;
      for (int k = 0; k < words; ++k) {
        const __m256i xk = _mm256_set1_epi64x(static_cast<long long>(x[k]));
        const uint64_t* wk = w + static_cast<int64_t>(k) * ocp;
        for (int j = 0; j < kBlocks; ++j) {
          const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wk + 4 * j));
          sum[j] = _mm256_add_epi64(sum[j], _mm256_sad_epu8(PopcountBytes(_mm256_xor_si256(xk, wv)), zero));
        }
      }
    }
    for (int j = 0; j < kBlocks; ++j) {
      alignas(32) int64_t lanes[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum[j]);
      for (int i = 0; i < 4; ++i) popcounts[c0 + 4 * j + i] = static_cast<int32_t>(lanes[i]);
    }
  }

  static void Accumulate(const uint64_t* const* tap_inputs, const int* tap_ids, int taps, int words,
                         const uint64_t* weights, int ocp, int32_t* popcounts) {
    int c0 = 0;
    for (; c0 + 32 <= ocp; c0 += 32) Block<8>(tap_inputs, tap_ids, taps, words, weights, ocp, c0, popcounts);
    for (; c0 < ocp; c0 += 8) Block<2>(tap_inputs, tap_ids, taps, words, weights, ocp, c0, popcounts);
  }
};

void PackAvx2(const float* input, int64_t pixels, int channels, int words, uint64_t* bits) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t p = 0; p < pixels; ++p) {
    const float* x = input + p * channels;
    uint64_t* out = bits + p * words;
    for (int w = 0; w < words; ++w) {
      const int begin = w * 64;
      const int end = std::min(channels, begin + 64);
      uint64_t word = 0;
      int c = begin;
      for (; c + 8 <= end; c += 8) {
        const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + c), zero, _CMP_NGE_UQ));
        word |= static_cast<uint64_t>(static_cast<unsigned>(mask)) << (c - begin);
      }
      for (; c < end; ++c) word |= static_cast<uint64_t>(!(x[c] >= 0.0f)) << (c - begin);
      out[w] = word;
    }
  }
}

}  // namespace

const KernelSet kAvx2Kernel = {"avx2", PackAvx2, internal::ConvRows<Avx2Micro>};

}  // namespace tfcompress
