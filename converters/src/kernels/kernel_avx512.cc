// AVX-512 kernel (needs AVX512F + AVX512BW + AVX512VPOPCNTDQ): eight output channels per
// 512-bit register; per tap word, the input word is broadcast, XORed with the weights of
// 8 x 8 channels and counted with VPOPCNTQ, so one pixel keeps up to 64 channels in
// eight accumulators.
#include <immintrin.h>

#include "kernels/conv_driver.h"
#include "kernels/kernel_sets.h"

namespace tfcompress {
namespace {

// acc = base - 2 * popcount (exact in int32), then multiplier * acc + bias and the activation,
// stored to `out` for the channels of `lanes`.
inline void StoreTransformed(__m512i popcounts, int base, const BinaryConvArgs& a, int c0, __mmask8 lanes,
                             float* out) {
  const __m512i acc = _mm512_sub_epi64(_mm512_set1_epi64(base), _mm512_slli_epi64(popcounts, 1));  // exact
  const __m256 m = _mm256_maskz_loadu_ps(lanes, a.multiplier + c0);
  const __m256 b = _mm256_maskz_loadu_ps(lanes, a.bias + c0);
  __m256 y = _mm256_fmadd_ps(m, _mm512_cvtepi64_ps(acc), b);
  if (a.activation != Activation::kNone) y = _mm256_max_ps(y, _mm256_setzero_ps());
  if (a.activation == Activation::kRelu6) y = _mm256_min_ps(y, _mm256_set1_ps(6.0f));
  _mm256_mask_storeu_ps(out + c0, lanes, y);
}

struct Avx512Micro {
  static constexpr bool kHasInterior = true;

  // Two output pixels (p0, p1) x kBlocks * 8 channels from c0: each weight vector is loaded
  // once for both pixels.
  template <int kBlocks, int kPixels>
  static inline void InteriorBlock(const BinaryConvArgs& a, const uint64_t* p0, const uint64_t* p1,
                                   const int64_t* tap_offsets, int taps, int c0, float* out0, float* out1) {
    const int words = a.words;
    const int ocp = a.out_c_padded;
    __m512i s0[kBlocks], s1[kBlocks];
#pragma GCC unroll 8
    for (int j = 0; j < kBlocks; ++j) s0[j] = s1[j] = _mm512_setzero_si512();
    for (int t = 0; t < taps; ++t) {
      const uint64_t* x0 = p0 + tap_offsets[t];
      const uint64_t* x1 = p1 + tap_offsets[t];
      const uint64_t* w = a.weights + static_cast<int64_t>(t) * words * ocp + c0;
      for (int k = 0; k < words; ++k) {
        const __m512i b0 = _mm512_set1_epi64(static_cast<long long>(x0[k]));
        const __m512i b1 = kPixels == 2 ? _mm512_set1_epi64(static_cast<long long>(x1[k])) : b0;
        const uint64_t* wk = w + static_cast<int64_t>(k) * ocp;
#pragma GCC unroll 8
        for (int j = 0; j < kBlocks; ++j) {
          const __m512i wv = _mm512_loadu_si512(wk + 8 * j);
          s0[j] = _mm512_add_epi64(s0[j], _mm512_popcnt_epi64(_mm512_xor_si512(b0, wv)));
          if constexpr (kPixels == 2) s1[j] = _mm512_add_epi64(s1[j], _mm512_popcnt_epi64(_mm512_xor_si512(b1, wv)));
        }
      }
    }
    const int base = taps * a.g.in_c;
#pragma GCC unroll 8
    for (int j = 0; j < kBlocks; ++j) {
      const int c = c0 + 8 * j;
      const int left = a.g.out_c - c;
      const __mmask8 lanes = left >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << left) - 1);
      StoreTransformed(s0[j], base, a, c, lanes, out0);
      if constexpr (kPixels == 2) StoreTransformed(s1[j], base, a, c, lanes, out1);
    }
  }

  template <int kPixels>
  static inline void InteriorPixels(const BinaryConvArgs& a, const uint64_t* p0, const uint64_t* p1,
                                    const int64_t* tap_offsets, float* out0, float* out1) {
    const int taps = a.g.kernel_h * a.g.kernel_w;
    const int ocp = a.out_c_padded;
    int c0 = 0;
    for (; c0 + 64 <= ocp; c0 += 64) InteriorBlock<8, kPixels>(a, p0, p1, tap_offsets, taps, c0, out0, out1);
    for (; c0 < ocp; c0 += 8) InteriorBlock<1, kPixels>(a, p0, p1, tap_offsets, taps, c0, out0, out1);
  }

  static void Interior(const BinaryConvArgs& a, const uint64_t* first_tap, int ox_begin, int ox_end,
                       const int64_t* tap_offsets, float* out) {
    const int64_t step = static_cast<int64_t>(a.g.stride_w) * a.words;
    const int out_c = a.g.out_c;
    int ox = ox_begin;
    for (; ox + 2 <= ox_end; ox += 2) {
      const uint64_t* p0 = first_tap + (ox - ox_begin) * step;
      float* o0 = out + static_cast<int64_t>(ox - ox_begin) * out_c;
      InteriorPixels<2>(a, p0, p0 + step, tap_offsets, o0, o0 + out_c);
    }
    if (ox < ox_end) {
      const uint64_t* p0 = first_tap + (ox - ox_begin) * step;
      float* o0 = out + static_cast<int64_t>(ox - ox_begin) * out_c;
      InteriorPixels<1>(a, p0, p0, tap_offsets, o0, o0);
    }
  }

  template <int kBlocks>
  static inline void Block(const uint64_t* const* tap_inputs, const int* tap_ids, int taps, int words,
                           const uint64_t* weights, int ocp, int c0, int32_t* popcounts) {
    __m512i sum[kBlocks];
    for (int j = 0; j < kBlocks; ++j) sum[j] = _mm512_setzero_si512();
    for (int t = 0; t < taps; ++t) {
      const uint64_t* x = tap_inputs[t];
      const uint64_t* w = weights + static_cast<int64_t>(tap_ids[t]) * words * ocp + c0;
      for (int k = 0; k < words; ++k) {
        const __m512i xk = _mm512_set1_epi64(static_cast<long long>(x[k]));
        const uint64_t* wk = w + static_cast<int64_t>(k) * ocp;
#pragma GCC unroll 8
        for (int j = 0; j < kBlocks; ++j) {
          const __m512i wv = _mm512_loadu_si512(wk + 8 * j);
          sum[j] = _mm512_add_epi64(sum[j], _mm512_popcnt_epi64(_mm512_xor_si512(xk, wv)));
        }
      }
    }
    for (int j = 0; j < kBlocks; ++j) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(popcounts + c0 + 8 * j), _mm512_cvtepi64_epi32(sum[j]));
    }
  }

  static void Accumulate(const uint64_t* const* tap_inputs, const int* tap_ids, int taps, int words,
                         const uint64_t* weights, int ocp, int32_t* popcounts) {
    int c0 = 0;
    for (; c0 + 64 <= ocp; c0 += 64) Block<8>(tap_inputs, tap_ids, taps, words, weights, ocp, c0, popcounts);
    for (; c0 + 32 <= ocp; c0 += 32) Block<4>(tap_inputs, tap_ids, taps, words, weights, ocp, c0, popcounts);
    for (; c0 < ocp; c0 += 8) Block<1>(tap_inputs, tap_ids, taps, words, weights, ocp, c0, popcounts);
  }
};

// 16 floats -> 16 bits with one compare (not-greater-or-equal, unordered: NaN -> 1).
void PackAvx512(const float* input, int64_t pixels, int channels, int words, uint64_t* bits) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t p = 0; p < pixels; ++p) {
    const float* x = input + p * channels;
    uint64_t* out = bits + p * words;
    int w = 0;
    for (; (w + 1) * 64 <= channels; ++w) {  // full words: four compares, no masks
      const float* v = x + w * 64;
      const uint64_t m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(v), zero, _CMP_NGE_UQ);
      const uint64_t m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(v + 16), zero, _CMP_NGE_UQ);
      const uint64_t m2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(v + 32), zero, _CMP_NGE_UQ);
      const uint64_t m3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(v + 48), zero, _CMP_NGE_UQ);
      out[w] = m0 | (m1 << 16) | (m2 << 32) | (m3 << 48);
    }
    for (; w < words; ++w) {
      uint64_t word = 0;
      for (int part = 0; part < 4; ++part) {
        const int begin = w * 64 + part * 16;
        const int left = channels - begin;
        if (left <= 0) break;
        const __mmask16 lanes = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(lanes, x + begin);
        const __mmask16 negative = _mm512_mask_cmp_ps_mask(lanes, v, zero, _CMP_NGE_UQ);
        word |= static_cast<uint64_t>(negative) << (16 * part);
      }
      out[w] = word;
    }
  }
}

}  // namespace

const KernelSet kAvx512Kernel = {"avx512", PackAvx512, internal::ConvRows<Avx512Micro>};

}  // namespace tfcompress
