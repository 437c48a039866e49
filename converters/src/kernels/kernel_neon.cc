// aarch64 NEON kernel: two output channels per 128-bit register; VCNT counts bits per
// byte, pairwise widening adds (VPADDL / VPADAL) sum them into 64-bit lanes.
#include <arm_neon.h>

#include "kernels/conv_driver.h"
#include "kernels/kernel_sets.h"

namespace tfcompress {
namespace {

struct NeonMicro {
  static constexpr bool kHasInterior = false;
  template <int kBlocks>
  static inline void Block(const uint64_t* const* tap_inputs, const int* tap_ids, int taps, int words,
                           const uint64_t* weights, int ocp, int c0, int32_t* popcounts) {
    uint64x2_t sum[kBlocks];
    for (int j = 0; j < kBlocks; ++j) sum[j] = vdupq_n_u64(0);
    for (int t = 0; t < taps; ++t) {
      const uint64_t* x = tap_inputs[t];
      const uint64_t* w = weights + static_cast<int64_t>(tap_ids[t]) * words * ocp + c0;
      for (int k = 0; k < words; ++k) {
        const uint64x2_t xk = vdupq_n_u64(x[k]);
        const uint64_t* wk = w + static_cast<int64_t>(k) * ocp;
        for (int j = 0; j < kBlocks; ++j) {
          const uint8x16_t bits = vreinterpretq_u8_u64(veorq_u64(xk, vld1q_u64(wk + 2 * j)));
          sum[j] = vpadalq_u32(sum[j], vpaddlq_u16(vpaddlq_u8(vcntq_u8(bits))));
        }
      }
    }
    for (int j = 0; j < kBlocks; ++j) {
      popcounts[c0 + 2 * j] = static_cast<int32_t>(vgetq_lane_u64(sum[j], 0));
      popcounts[c0 + 2 * j + 1] = static_cast<int32_t>(vgetq_lane_u64(sum[j], 1));
    }
  }

  static void Accumulate(const uint64_t* const* tap_inputs, const int* tap_ids, int taps, int words,
                         const uint64_t* weights, int ocp, int32_t* popcounts) {
    int c0 = 0;
    for (; c0 + 16 <= ocp; c0 += 16) Block<8>(tap_inputs, tap_ids, taps, words, weights, ocp, c0, popcounts);
    for (; c0 < ocp; c0 += 8) Block<4>(tap_inputs, tap_ids, taps, words, weights, ocp, c0, popcounts);
  }
};

void PackNeon(const float* input, int64_t pixels, int channels, int words, uint64_t* bits) {
  internal::PackActivationsPortable(input, pixels, channels, words, bits);
}

}  // namespace

const KernelSet kNeonKernel = {"neon", PackNeon, internal::ConvRows<NeonMicro>, false};

}  // namespace tfcompress
