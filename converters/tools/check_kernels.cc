// Checks every optimized kernel of libtfcompress_ops.so against the reference kernel on
// random shapes (odd channel counts, strides, dilation, both paddings, batch > 1), with float
// and bit-packed input and output, without Python or TFLite: for a new target (e.g. aarch64
// NEON under qemu-aarch64 or on a Pi).
//
//   cmake --build BUILD --target tfcompress_check_kernels && BUILD/tfcompress_check_kernels
//
// Exit status 0 when every kernel matches (integer results exactly, transformed within 1e-4,
// packed output bits exactly wherever the reference output is not within 1e-4 of 0).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
const char* tfc_kernels();
int tfc_conv_output_size(const int* geometry, int* out_hw, char* error, int error_size);
int tfc_binary_conv2d(const char* kernel, const int* geometry, const float* input, const int* weights,
                      const float* multiplier, const float* bias, int activation, int threads, float* output,
                      long long output_size, char* error, int error_size);
int tfc_binary_conv2d_io(const char* kernel, const int* geometry, const void* input, const int* weights,
                         const float* multiplier, const float* bias, int activation, int threads, int packing,
                         void* output, long long output_size, char* error, int error_size);
}

namespace {

// The signs of `pixels` rows of `channels` floats as int32 words (bit = !(v >= 0)).
std::vector<int> PackSigns(const std::vector<float>& values, long long pixels, int channels) {
  const int words = (channels + 31) / 32;
  std::vector<int> packed(static_cast<size_t>(pixels) * words, 0);
  for (long long p = 0; p < pixels; ++p) {
    for (int c = 0; c < channels; ++c) {
      if (!(values[p * channels + c] >= 0.0f)) {
        int& word = packed[p * words + c / 32];
        word = static_cast<int>(static_cast<unsigned>(word) | (1u << (c % 32)));
      }
    }
  }
  return packed;
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::normal_distribution<float> normal;
  std::vector<std::string> kernels;
  std::stringstream names(tfc_kernels());
  for (std::string name; std::getline(names, name, ',');) {
    if (name != "reference") kernels.push_back(name);
  }
  int failures = 0, cases = 0;
  char error[256];
  for (int trial = 0; trial < 60; ++trial) {
    const int k = pick(1, 3) * 2 - 1;
    int g[13] = {pick(1, 3), pick(k, 12), pick(k, 12), pick(1, 200), pick(1, 80), k, k, pick(1, 2), pick(1, 2),
                 pick(1, 2), pick(1, 2), pick(0, 1), pick(0, 1)};
    if (g[7] > 1) g[9] = 1;
    if (g[8] > 1) g[10] = 1;
    int out_hw[4];
    if (tfc_conv_output_size(g, out_hw, error, sizeof(error)) != 0) continue;
    std::vector<float> x(static_cast<size_t>(g[0]) * g[1] * g[2] * g[3]);
    for (float& v : x) v = normal(rng);
    x[0] = 0.0f;
    std::vector<int> x_bits = PackSigns(x, static_cast<long long>(g[0]) * g[1] * g[2], g[3]);
    if (g[3] % 32 != 0) {  // unused high bits of a packed input must be ignored
      for (size_t i = (g[3] + 31) / 32 - 1; i < x_bits.size(); i += (g[3] + 31) / 32) {
        x_bits[i] = static_cast<int>(static_cast<unsigned>(x_bits[i]) | (~0u << (g[3] % 32)));
      }
    }
    std::vector<int> w(static_cast<size_t>(g[4]) * k * k * ((g[3] + 31) / 32));
    for (int& v : w) v = static_cast<int>(rng());
    std::vector<float> m(g[4]), b(g[4]);
    for (int c = 0; c < g[4]; ++c) {
      m[c] = 0.1f + std::fabs(normal(rng));
      b[c] = normal(rng);
    }
    const long long size = static_cast<long long>(g[0]) * out_hw[0] * out_hw[1] * g[4];
    std::vector<float> ref(size), got(size);
    for (int activation = 0; activation < 2; ++activation) {
      tfc_binary_conv2d("reference", g, x.data(), w.data(), m.data(), b.data(), activation, 1, ref.data(), size,
                        error, sizeof(error));
      for (const std::string& kernel : kernels) {
        for (int threads = 1; threads <= 2; ++threads) {
          std::fill(got.begin(), got.end(), NAN);
          if (tfc_binary_conv2d(kernel.c_str(), g, x.data(), w.data(), m.data(), b.data(), activation, threads,
                                got.data(), size, error, sizeof(error)) != 0) {
            std::printf("%s: %s\n", kernel.c_str(), error);
            ++failures;
            continue;
          }
          ++cases;
          for (long long i = 0; i < size; ++i) {
            if (!(std::fabs(got[i] - ref[i]) <= 1e-4f * (1.0f + std::fabs(ref[i])))) {
              std::printf("MISMATCH kernel %s trial %d index %lld: %f vs %f\n", kernel.c_str(), trial, i, got[i], ref[i]);
              ++failures;
              break;
            }
          }
          // Packed input (the signs of x, with garbage in the unused high bits), packed output.
          const long long pixels = size / g[4];
          const int out_words = (g[4] + 31) / 32;
          std::vector<int> got_bits(static_cast<size_t>(pixels) * out_words, 0x5A5A5A5A);
          if (tfc_binary_conv2d_io(kernel.c_str(), g, x_bits.data(), w.data(), m.data(), b.data(), activation, threads,
                                   3, got_bits.data(), static_cast<long long>(got_bits.size()), error,
                                   sizeof(error)) != 0) {
            std::printf("%s packed: %s\n", kernel.c_str(), error);
            ++failures;
            continue;
          }
          ++cases;
          const std::vector<int> ref_bits = PackSigns(ref, pixels, g[4]);
          for (long long p = 0; p < pixels; ++p) {
            bool bad = false;
            for (int c = 0; c < out_words * 32 && !bad; ++c) {
              const unsigned mask = 1u << (c % 32);
              const bool got_bit = (static_cast<unsigned>(got_bits[p * out_words + c / 32]) & mask) != 0;
              const bool ref_bit = (static_cast<unsigned>(ref_bits[p * out_words + c / 32]) & mask) != 0;
              const bool near_zero = c < g[4] && std::fabs(ref[p * g[4] + c]) <= 1e-4f;
              bad = got_bit != ref_bit && !near_zero;
            }
            if (bad) {
              std::printf("PACKED MISMATCH kernel %s trial %d pixel %lld\n", kernel.c_str(), trial, p);
              ++failures;
              break;
            }
          }
        }
      }
    }
  }
  std::printf("kernels %s: %d runs checked, %d failures\n", tfc_kernels(), cases, failures);
  return failures == 0 && cases > 0 ? 0 : 1;
}
