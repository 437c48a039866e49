// Checks every optimized kernel of libtfcompress_ops.so against the reference kernel on
// random shapes (odd channel counts, strides, dilation, both paddings, batch > 1), without
// Python or TFLite: for a new target (e.g. aarch64 NEON under qemu-aarch64 or on a Pi).
//
//   cmake --build BUILD --target tfcompress_check_kernels && BUILD/tfcompress_check_kernels
//
// Exit status 0 when every kernel matches (integer results exactly, transformed within 1e-4).
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
}

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
        }
      }
    }
  }
  std::printf("kernels %s: %d runs checked, %d failures\n", tfc_kernels(), cases, failures);
  return failures == 0 && cases > 0 ? 0 : 1;
}
