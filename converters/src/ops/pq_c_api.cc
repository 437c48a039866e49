// A plain C entry to the PQ kernels for tests and benchmarks through ctypes
// (tfcompress/pq/native.py), outside any TFLite interpreter.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "ops/pq_kernels.h"

#define TFC_PQ_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

void SetError(char* error, int error_size, const std::string& message) {
  if (error != nullptr && error_size > 0) std::snprintf(error, static_cast<size_t>(error_size), "%s", message.c_str());
}

int Bits(int n_centroids) {
  int bits = 1;
  while ((1 << bits) < n_centroids) ++bits;
  return bits;
}

bool Unpack(const uint8_t* packed, int64_t packed_bytes, int n_centroids, int64_t count, std::vector<uint16_t>* codes,
            char* error, int error_size) {
  if (!tfcompress::UnpackCodes(packed, static_cast<size_t>(packed_bytes), Bits(n_centroids), count, n_centroids,
                               codes)) {
    SetError(error, error_size, "packed codes are too short or hold a code >= n_centroids");
    return false;
  }
  return true;
}

std::vector<float> Codebook(const uint16_t* half, int n_centroids, int block_size) {
  std::vector<float> codebook(static_cast<size_t>(n_centroids) * block_size);
  for (size_t i = 0; i < codebook.size(); ++i) codebook[i] = tfcompress::HalfToFloat(half[i]);
  return codebook;
}

}  // namespace

// Comma-separated PQ dense variants usable here, best first ("avx512,avx2,scalar").
TFC_PQ_EXPORT const char* tfc_pq_dense_variants() {
  static const std::string names = tfcompress::PQDenseVariants();
  return names.c_str();
}

// y = act(x W + bias) for `rows` rows, W given by packed codes + float16 codebook.
// `variant`: "reference" or a name from tfc_pq_dense_variants(). `repeats` > 1 runs the
// prepared kernel that many times (for timing without Python overhead) and writes the
// median time per run, in seconds, to *seconds. Returns 0, or -1 with `error` set.
TFC_PQ_EXPORT int tfc_pq_dense(const char* variant, const float* input, int64_t rows, int in_features,
                               int out_features, const uint8_t* packed, int64_t packed_bytes, const uint16_t* codebook,
                               int n_centroids, int block_size, const float* bias, int activation, int threads,
                               int repeats, float* output, double* seconds, char* error, int error_size) {
  if (in_features < 1 || out_features < 1 || block_size < 1 || in_features % block_size != 0 || rows < 1 ||
      activation < 0 || activation > 2) {
    SetError(error, error_size, "bad shape, block size or activation");
    return -1;
  }
  std::vector<uint16_t> codes;
  if (!Unpack(packed, packed_bytes, n_centroids, static_cast<int64_t>(in_features) / block_size * out_features, &codes,
              error, error_size)) {
    return -1;
  }
  const std::vector<float> book = Codebook(codebook, n_centroids, block_size);
  const auto act = static_cast<tfcompress::Activation>(activation);
  std::vector<double> times;
  const std::string name(variant);
  tfcompress::PQDenseKernel kernel;
  if (name != "reference") {
    const std::string message = kernel.Prepare(codes.data(), book.data(), bias, n_centroids, block_size, in_features,
                                               out_features, name);
    if (!message.empty()) {
      SetError(error, error_size, message);
      return -1;
    }
  }
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    if (name == "reference") {
      tfcompress::ReferencePQDense(input, rows, in_features, out_features, codes.data(), book.data(), n_centroids,
                                   block_size, bias, act, output);
    } else {
      kernel.Run(input, rows, act, output, threads);
    }
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  if (seconds != nullptr) *seconds = times[times.size() / 2];
  return 0;
}

// Kernel [C_out, kh, kw, C_in] decoded from packed codes and a float16 codebook.
TFC_PQ_EXPORT int tfc_pq_decode(const uint8_t* packed, int64_t packed_bytes, const uint16_t* codebook,
                                int n_centroids, int block_size, int kernel_h, int kernel_w, int in_channels,
                                int out_channels, float* output, char* error, int error_size) {
  const int64_t rows = static_cast<int64_t>(in_channels) * kernel_h * kernel_w;
  if (block_size < 1 || rows % block_size != 0) {
    SetError(error, error_size, "block_size does not divide C_in*kh*kw");
    return -1;
  }
  std::vector<uint16_t> codes;
  if (!Unpack(packed, packed_bytes, n_centroids, rows / block_size * out_channels, &codes, error, error_size)) return -1;
  const std::vector<float> book = Codebook(codebook, n_centroids, block_size);
  tfcompress::DecodeKernelOhwi(codes.data(), book.data(), block_size, kernel_h, kernel_w, in_channels, out_channels,
                               output);
  return 0;
}
