// AVX2 kernel (AVX2 has no vector popcount). Activations and weights are in nibble planes
// (binary_conv.h): every byte of x_plane ^ w_plane is a value 0..15, so one VPSHUFB looks up
// its popcount in a 16-entry table (the nibble table of Mula, Kurz, Lemire 2018, "Faster
// Population Counts Using AVX2 Instructions", with its masking and shifting moved out of the
// loop, into the packing) and VPADDB accumulates the counts in 8-bit lanes; VPSADBW sums the
// lanes into 64-bit channel counts once per block (at most every 63 steps, see kMaxSteps).
//
// Register blocking: kPixels output pixels x kVectors * 4 channels (a 256-bit vector holds one
// plane word of 4 channels). Per receptive-field step q (tap, plane word), each pixel's input
// word is broadcast once and XORed with the kVectors weight vectors of the step, which all
// pixels share; the 4 x 2 byte accumulators stay in registers. The output transform (and,
// for a packed output, the sign bits) is applied to the counts, 8 channels per register.
//
// Arithmetic floor: per 512 bits of XNOR-popcount, 4 x (VPXOR + VPSHUFB + VPADDB) = 12 vector
// ALU uops. On AMD Zen 2 / Zen 3 (4 vector ALU pipes, VPSHUFB on 2 of them) and Intel since
// Haswell (3 vector ALU ports, VPSHUFB on 1-2): 3 (AMD) / 4 (Intel) cycles per 512 bits.
// benchmarks/kernel_mca.py measures the inner loop statically with llvm-mca.
#include <immintrin.h>

#include "kernels/conv_driver.h"
#include "kernels/kernel_sets.h"

namespace tfcompress {
namespace {

// A byte lane gains at most popcount(nibble) = 4 per step: 63 * 4 < 256 cannot overflow.
constexpr int kMaxSteps = 63;
// Block shape: 4 pixels x 8 channels (2 vectors): 8 byte accumulators, the 2 weight vectors of
// the step, the table, a broadcast and a temporary fit the 16 ymm registers (4 x 2 measured
// 5% faster than 2 x 4, 9% faster than 3 x 2 and 27% faster than 5 x 2 on the 56x56x64 3x3 conv).
constexpr int kMaxPixels = 4;
constexpr int kBlockVectors = 2;

// Channels c..c+7 as int32 lanes from the 64-bit counts of c..c+3 (`low`) and c+4..c+7 (`high`).
inline __m256i Counts8(__m256i low, __m256i high) {
  const __m256i mixed = _mm256_blend_epi32(low, _mm256_slli_epi64(high, 32), 0xAA);  // c0 c4 c1 c5 c2 c6 c3 c7
  return _mm256_permutevar8x32_epi32(mixed, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
}

struct Avx2Micro : internal::BlockedMicro<Avx2Micro, kMaxPixels> {
  static constexpr int kBlockChannels = 4 * kBlockVectors;

  // kPixels pixels x kBlockChannels channels from c0.
  template <int kPixels>
  static inline void Block(const BinaryConvArgs& a, const uint64_t* first, int64_t step, const int64_t* offsets,
                           const int32_t* const* corr, int64_t out_pixel, int c0, uint64_t* bits) {
    constexpr int kVectors = kBlockVectors;
    static_assert(kVectors % 2 == 0, "whole 8-channel groups");
    const int ocp = a.out_c_padded;
    const int taps = a.g.kernel_h * a.g.kernel_w;
    const int steps = taps * a.words;
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1,
                                           2, 2, 3, 2, 3, 3, 4);
    const __m256i zero = _mm256_setzero_si256();
    __m256i sums[kPixels][kVectors];  // 64-bit counts
#pragma GCC unroll 4
    for (int i = 0; i < kPixels; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < kVectors; ++j) sums[i][j] = zero;
    }
    const uint64_t* w = a.weights + c0;
    for (int q0 = 0; q0 < steps; q0 += kMaxSteps) {
      const int q1 = std::min(steps, q0 + kMaxSteps);
      __m256i acc[kPixels][kVectors];  // 8-bit counts
#pragma GCC unroll 4
      for (int i = 0; i < kPixels; ++i) {
#pragma GCC unroll 4
        for (int j = 0; j < kVectors; ++j) acc[i][j] = zero;
      }
      for (int q = q0; q < q1; ++q, w += ocp) {
        const uint64_t* x0 = first + offsets[q];
#pragma GCC unroll 4
        for (int i = 0; i < kPixels; ++i) {
          const __m256i x = _mm256_set1_epi64x(static_cast<long long>(x0[i * step]));
#pragma GCC unroll 4
          for (int j = 0; j < kVectors; ++j) {
            const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 4 * j));
            acc[i][j] = _mm256_add_epi8(acc[i][j], _mm256_shuffle_epi8(table, _mm256_xor_si256(x, wv)));
          }
        }
      }
#pragma GCC unroll 4
      for (int i = 0; i < kPixels; ++i) {
#pragma GCC unroll 4
        for (int j = 0; j < kVectors; ++j) sums[i][j] = _mm256_add_epi64(sums[i][j], _mm256_sad_epu8(acc[i][j], zero));
      }
    }
    Epilogue<kPixels, kVectors>(a, sums, taps * a.g.in_c, corr, out_pixel, c0, bits);
  }

  // y = act(multiplier * (base - 2 * popcount - correction) + bias), 8 channels per register
  // (exact: integers below 2^24 before the multiply); floats stored, or sign bits ORed into
  // bits[i] at bit c % 64.
  template <int kPixels, int kVectors>
  static inline void Epilogue(const BinaryConvArgs& a, const __m256i (&sums)[kPixels][kVectors], int base,
                              const int32_t* const* corr, int64_t out_pixel, int c0, uint64_t* bits) {
    const int out_c = a.g.out_c;
    const __m256i bases = _mm256_set1_epi32(base);
    const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int j = 0; j < kVectors; j += 2) {
      const int c = c0 + 4 * j;  // c < out_c: an 8-channel group never starts in the padding
      const int left = out_c - c;
      const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      const __m256 m = _mm256_maskload_ps(a.multiplier + c, lanes);
      const __m256 b = _mm256_maskload_ps(a.bias + c, lanes);
#pragma GCC unroll 4
      for (int i = 0; i < kPixels; ++i) {
        const __m256i counts = Counts8(sums[i][j], sums[i][j + 1]);
        __m256i acc = _mm256_sub_epi32(bases, _mm256_add_epi32(counts, counts));
        if (corr[i] != nullptr) acc = _mm256_sub_epi32(acc, _mm256_maskload_epi32(corr[i] + c, lanes));  // tails masked
        __m256 y = _mm256_fmadd_ps(m, _mm256_cvtepi32_ps(acc), b);
        if (a.activation != Activation::kNone) y = _mm256_max_ps(y, zero);
        if (a.activation == Activation::kRelu6) y = _mm256_min_ps(y, _mm256_set1_ps(6.0f));
        if (a.output != nullptr) {
          float* out = a.output + (out_pixel + i) * out_c + c;
          if (left >= 8) {
            _mm256_storeu_ps(out, y);
          } else {
            _mm256_maskstore_ps(out, lanes, y);
          }
        } else {
          const unsigned negative = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(y, zero, _CMP_NGE_UQ))) &
                                    static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(lanes)));
          bits[i] |= static_cast<uint64_t>(negative) << (c % 64);
        }
      }
    }
  }
};

// 8 floats -> 8 sign bits per compare; each 64-channel word stored as its two nibble planes
// (`words` = 2 * Words64(channels)).
void PackAvx2(const float* input, int64_t pixels, int channels, int words, uint64_t* bits) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t p = 0; p < pixels; ++p) {
    const float* x = input + p * channels;
    uint64_t* out = bits + p * words;
    for (int w = 0; 2 * w < words; ++w) {
      const int begin = w * 64;
      const int end = std::min(channels, begin + 64);
      uint64_t word = 0;
      int c = begin;
      for (; c + 8 <= end; c += 8) {
        const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + c), zero, _CMP_NGE_UQ));
        word |= static_cast<uint64_t>(static_cast<unsigned>(mask)) << (c - begin);
      }
      for (; c < end; ++c) word |= static_cast<uint64_t>(!(x[c] >= 0.0f)) << (c - begin);
      StoreNibblePlanes(word, out + 2 * w);
    }
  }
}

}  // namespace

const KernelSet kAvx2Kernel = {"avx2", PackAvx2, internal::ConvRows<Avx2Micro>, true};

}  // namespace tfcompress
