// Portable optimized kernel: 64-bit XOR + popcount, no SIMD (any CPU).
#include "kernels/conv_driver.h"
#include "kernels/kernel_sets.h"

namespace tfcompress {
namespace {

struct ScalarMicro {
  static constexpr bool kHasInterior = false;
  static void Accumulate(const uint64_t* const* tap_inputs, const int* tap_ids, int taps, int words,
                         const uint64_t* weights, int ocp, int32_t* popcounts) {
    std::fill(popcounts, popcounts + ocp, 0);
    for (int t = 0; t < taps; ++t) {
      const uint64_t* x = tap_inputs[t];
      const uint64_t* w = weights + static_cast<int64_t>(tap_ids[t]) * words * ocp;
      for (int k = 0; k < words; ++k) {
        const uint64_t xk = x[k];
        const uint64_t* wk = w + static_cast<int64_t>(k) * ocp;
        for (int c = 0; c < ocp; ++c) popcounts[c] += __builtin_popcountll(xk ^ wk[c]);
      }
    }
  }
};

void PackScalar(const float* input, int64_t pixels, int channels, int words, uint64_t* bits) {
  internal::PackActivationsPortable(input, pixels, channels, words, bits);
}

}  // namespace

const KernelSet kScalarKernel = {"scalar", PackScalar, internal::ConvRows<ScalarMicro>, false};

}  // namespace tfcompress
