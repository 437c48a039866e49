// aarch64 NEON kernel: two output channels per 128-bit register; CNT counts the bits of each
// byte and ADD (8-bit lanes) accumulates the counts, so the inner loop is EOR + CNT + ADD per
// 128 bits of XNOR-popcount; pairwise widening adds (UADDLP / UADALP) sum the byte lanes into
// 64-bit channel counts once per block (at most every 31 steps, see kMaxSteps).
//
// Register blocking: kPixels output pixels x 8 channels (4 vectors). Per receptive-field step q
// (tap, word), the 4 weight vectors of the step are loaded once for all pixels and each pixel's
// input word is broadcast once (LD1R) for the 4 vectors: 16 byte accumulators, 4 weight
// vectors and a broadcast in the 32 vector registers.
//
// Arithmetic floor: 4 x (EOR + CNT + ADD) = 12 ASIMD instructions per 512 bits; Cortex-A72 and
// Cortex-A76 issue two of them per cycle: 6 cycles per 512 bits. benchmarks/kernel_mca.py
// measures the inner loop with llvm-mca for both.
#include <arm_neon.h>

#include "kernels/conv_driver.h"
#include "kernels/kernel_sets.h"

namespace tfcompress {
namespace {

// A byte lane gains at most popcount(byte) = 8 per step: 31 * 8 < 256 cannot overflow.
constexpr int kMaxSteps = 31;
constexpr int kMaxPixels = 4;
constexpr int kVectors = 4;  // 8 channels

struct NeonMicro : internal::BlockedMicro<NeonMicro, kMaxPixels> {
  static constexpr int kBlockChannels = 2 * kVectors;

  template <int kPixels>
  static inline void Block(const BinaryConvArgs& a, const uint64_t* first, int64_t step, const int64_t* offsets,
                           const int32_t* const* corr, int64_t out_pixel, int c0, uint64_t* bits) {
    const int ocp = a.out_c_padded;
    const int taps = a.g.kernel_h * a.g.kernel_w;
    const int steps = taps * a.words;
    uint64x2_t sums[kPixels][kVectors];  // 64-bit counts of 2 channels
    for (int i = 0; i < kPixels; ++i) {
      for (int j = 0; j < kVectors; ++j) sums[i][j] = vdupq_n_u64(0);
    }
    const uint64_t* w = a.weights + c0;
    for (int q0 = 0; q0 < steps; q0 += kMaxSteps) {
      const int q1 = std::min(steps, q0 + kMaxSteps);
      uint8x16_t acc[kPixels][kVectors];  // 8-bit counts
      for (int i = 0; i < kPixels; ++i) {
        for (int j = 0; j < kVectors; ++j) acc[i][j] = vdupq_n_u8(0);
      }
      for (int q = q0; q < q1; ++q, w += ocp) {
        const uint64_t* x0 = first + offsets[q];
        uint8x16_t wv[kVectors];
        for (int j = 0; j < kVectors; ++j) wv[j] = vreinterpretq_u8_u64(vld1q_u64(w + 2 * j));
        for (int i = 0; i < kPixels; ++i) {
          const uint8x16_t x = vreinterpretq_u8_u64(vld1q_dup_u64(x0 + i * step));
          for (int j = 0; j < kVectors; ++j) acc[i][j] = vaddq_u8(acc[i][j], vcntq_u8(veorq_u8(x, wv[j])));
        }
      }
      for (int i = 0; i < kPixels; ++i) {
        for (int j = 0; j < kVectors; ++j) sums[i][j] = vpadalq_u32(sums[i][j], vpaddlq_u16(vpaddlq_u8(acc[i][j])));
      }
    }
    const int32x4_t bases = vdupq_n_s32(taps * a.g.in_c);
    for (int half = 0; half < 2; ++half) {  // channels c0 + 4 * half .. + 3
      const int c = c0 + 4 * half;
      const int left = a.g.out_c - c;
      if (left <= 0) break;
      const int lanes = std::min(left, 4);
      float m[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
      for (int l = 0; l < lanes; ++l) {
        m[l] = a.multiplier[c + l];
        b[l] = a.bias[c + l];
      }
      const float32x4_t mv = vld1q_f32(m), bv = vld1q_f32(b);
      for (int i = 0; i < kPixels; ++i) {
        const uint32x4_t counts =
            vcombine_u32(vmovn_u64(sums[i][2 * half]), vmovn_u64(sums[i][2 * half + 1]));
        int32x4_t acc = vsubq_s32(bases, vreinterpretq_s32_u32(vshlq_n_u32(counts, 1)));
        if (corr[i] != nullptr) {  // tail channels: copied, never read past the end
          int32_t k[4] = {0, 0, 0, 0};
          for (int l = 0; l < lanes; ++l) k[l] = corr[i][c + l];
          acc = vsubq_s32(acc, vld1q_s32(k));
        }
        float32x4_t y = vfmaq_f32(bv, mv, vcvtq_f32_s32(acc));  // exact integers below 2^24
        if (a.activation != Activation::kNone) y = vmaxq_f32(y, vdupq_n_f32(0.0f));
        if (a.activation == Activation::kRelu6) y = vminq_f32(y, vdupq_n_f32(6.0f));
        if (a.output != nullptr) {
          float* out = a.output + (out_pixel + i) * a.g.out_c + c;
          if (lanes == 4) {
            vst1q_f32(out, y);
          } else {
            float values[4];
            vst1q_f32(values, y);
            for (int l = 0; l < lanes; ++l) out[l] = values[l];
          }
        } else {
          const uint32x4_t negative = vmvnq_u32(vcgeq_f32(y, vdupq_n_f32(0.0f)));  // NaN -> 1
          const uint32_t weights[4] = {1, 2, 4, 8};
          const uint32_t mask = vaddvq_u32(vandq_u32(negative, vld1q_u32(weights))) & ((1u << lanes) - 1u);
          bits[i] |= static_cast<uint64_t>(mask) << (c % 64);
        }
      }
    }
  }
};

void PackNeon(const float* input, int64_t pixels, int channels, int words, uint64_t* bits) {
  internal::PackActivationsPortable(input, pixels, channels, words, bits);
}

}  // namespace

const KernelSet kNeonKernel = {"neon", PackNeon, internal::ConvRows<NeonMicro>, false};

}  // namespace tfcompress
