// Product-quantized kernels: unpacking, decoding, and the lookup-table dense layer.
// See pq_kernels.h for the math and layouts.
#include "ops/pq_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TFC_PQ_X86 1
// GCC 12 warns inside its own avx512fintrin.h (_mm512_undefined_* used as merge source; GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tfcompress {

float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  uint32_t mantissa = half & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal half: normalise
    int shift = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    bits = sign | ((113u - shift) << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

bool UnpackCodes(const uint8_t* packed, size_t packed_bytes, int bits, int64_t count, int n_centroids,
                 std::vector<uint16_t>* codes) {
  if (bits < 1 || bits > 16 || count < 0) return false;
  if (static_cast<uint64_t>(packed_bytes) * 8 < static_cast<uint64_t>(count) * bits) return false;
  codes->resize(static_cast<size_t>(count));
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t position = static_cast<uint64_t>(i) * bits;
    const size_t byte = static_cast<size_t>(position >> 3);
    uint32_t window = 0;
    for (int b = 0; b < 3 && byte + b < packed_bytes; ++b) window |= static_cast<uint32_t>(packed[byte + b]) << (8 * b);
    const uint32_t code = (window >> (position & 7)) & mask;
    if (code >= static_cast<uint32_t>(n_centroids)) return false;
    (*codes)[static_cast<size_t>(i)] = static_cast<uint16_t>(code);
  }
  return true;
}

void DecodeKernelOhwi(const uint16_t* codes, const float* codebook, int block_size, int kernel_h, int kernel_w,
                      int in_channels, int out_channels, float* output) {
  const int taps = kernel_h * kernel_w;
  const int blocks = in_channels * taps / block_size;
  for (int b = 0; b < blocks; ++b) {
    for (int j = 0; j < out_channels; ++j) {
      const float* centroid = codebook + static_cast<size_t>(codes[static_cast<size_t>(b) * out_channels + j]) * block_size;
      for (int t = 0; t < block_size; ++t) {
        const int row = b * block_size + t;  // row order (C_in, kh, kw)
        const int ci = row / taps, y = (row % taps) / kernel_w, x = row % kernel_w;
        output[((static_cast<size_t>(j) * kernel_h + y) * kernel_w + x) * in_channels + ci] = centroid[t];
      }
    }
  }
}

namespace {

inline float Activate(float v, Activation activation) {
  if (activation == Activation::kRelu) return std::max(v, 0.0f);
  if (activation == Activation::kRelu6) return std::min(std::max(v, 0.0f), 6.0f);
  return v;
}

}  // namespace

void ReferencePQDense(const float* input, int64_t rows, int in_features, int out_features, const uint16_t* codes,
                      const float* codebook, int n_centroids, int block_size, const float* bias,
                      Activation activation, float* output) {
  (void)n_centroids;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = input + r * in_features;
    for (int j = 0; j < out_features; ++j) {
      double sum = bias != nullptr ? bias[j] : 0.0;
      for (int i = 0; i < in_features; ++i) {
        const int code = codes[static_cast<size_t>(i / block_size) * out_features + j];
        sum += static_cast<double>(x[i]) * codebook[static_cast<size_t>(code) * block_size + i % block_size];
      }
      output[r * out_features + j] = Activate(static_cast<float>(sum), activation);
    }
  }
}

// ---- lookup-table dense kernel ------------------------------------------------------------

namespace {

// T[c] = <x_b, C[c]> for one block: vectorised over c (codebook transposed [d][k]).
inline void TableGeneric(const float* xb, const float* codebook_t, int k, int d, float* table) {
  const float x0 = xb[0];
  for (int c = 0; c < k; ++c) table[c] = x0 * codebook_t[c];
  for (int t = 1; t < d; ++t) {
    const float xt = xb[t];
    const float* row = codebook_t + static_cast<size_t>(t) * k;
    for (int c = 0; c < k; ++c) table[c] += xt * row[c];
  }
}

// y[j] += T[codes[j]] for j in [0, n).
template <typename Code>
inline void LookupScalar(const float* table, const Code* codes, int n, float* y) {
  for (int j = 0; j < n; ++j) y[j] += table[codes[j]];
}

#if TFC_PQ_X86
__attribute__((target("avx2,fma"))) void TableAvx2(const float* xb, const float* cbt, int k, int d, float* table) {
  TableGeneric(xb, cbt, k, d, table);
}

__attribute__((target("avx512f"))) void TableAvx512(const float* xb, const float* cbt, int k, int d, float* table) {
  TableGeneric(xb, cbt, k, d, table);
}

template <typename Code>
__attribute__((target("avx2,fma"))) __m256i LoadIndices8(const Code* c) {
  if constexpr (sizeof(Code) == 1) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c)));
  } else {
    return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
  }
}

template <typename Code>
__attribute__((target("avx2,fma"))) void LookupAvx2(const float* table, const Code* codes, int n, float* y) {
  const int vector_end = n / 32 * 32;
  for (int j = 0; j < vector_end; j += 32) {
    for (int q = 0; q < 32; q += 8) {
      const __m256 g = _mm256_i32gather_ps(table, LoadIndices8(codes + j + q), 4);
      _mm256_storeu_ps(y + j + q, _mm256_add_ps(_mm256_loadu_ps(y + j + q), g));
    }
  }
  LookupScalar(table, codes + vector_end, n - vector_end, y + vector_end);
}

template <typename Code>
__attribute__((target("avx512f"))) __m512i LoadIndices16(const Code* c) {
  if constexpr (sizeof(Code) == 1) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
  } else {
    return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c)));
  }
}

template <typename Code>
__attribute__((target("avx512f"))) void LookupAvx512(const float* table, const Code* codes, int n, float* y) {
  const int vector_end = n / 64 * 64;
  for (int j = 0; j < vector_end; j += 64) {
    const __m512 g0 = _mm512_i32gather_ps(LoadIndices16(codes + j), table, 4);
    const __m512 g1 = _mm512_i32gather_ps(LoadIndices16(codes + j + 16), table, 4);
    const __m512 g2 = _mm512_i32gather_ps(LoadIndices16(codes + j + 32), table, 4);
    const __m512 g3 = _mm512_i32gather_ps(LoadIndices16(codes + j + 48), table, 4);
    _mm512_storeu_ps(y + j, _mm512_add_ps(_mm512_loadu_ps(y + j), g0));
    _mm512_storeu_ps(y + j + 16, _mm512_add_ps(_mm512_loadu_ps(y + j + 16), g1));
    _mm512_storeu_ps(y + j + 32, _mm512_add_ps(_mm512_loadu_ps(y + j + 32), g2));
    _mm512_storeu_ps(y + j + 48, _mm512_add_ps(_mm512_loadu_ps(y + j + 48), g3));
  }
  LookupScalar(table, codes + vector_end, n - vector_end, y + vector_end);
}

bool HasAvx512() { return __builtin_cpu_supports("avx512f"); }
bool HasAvx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif

int LevelOf(const std::string& name) {
#if TFC_PQ_X86
  if (name == "avx512" && HasAvx512()) return 2;
  if (name == "avx2" && HasAvx2()) return 1;
#endif
  if (name == "scalar") return 0;
  return -1;
}

int BestLevel() {
  const char* forced = std::getenv("TFCOMPRESS_KERNEL");
  if (forced != nullptr && LevelOf(forced) >= 0) return LevelOf(forced);
#if TFC_PQ_X86
  if (HasAvx512()) return 2;
  if (HasAvx2()) return 1;
#endif
  return 0;
}

const char* const kLevelNames[] = {"scalar", "avx2", "avx512"};

struct RowJob {
  PQDenseKernel* kernel;
  const float* x;
  float* y;
  int parts;
};

void PartTask(void* ctx, int begin, int end) {
  auto* job = static_cast<RowJob*>(ctx);
  for (int part = begin; part < end; ++part) job->kernel->RunPart(job->x, part, job->parts, job->y);
}

}  // namespace

std::string PQDenseVariants() {
  std::string names;
  for (int level = 2; level >= 0; --level) {
    if (LevelOf(kLevelNames[level]) == level) names += (names.empty() ? "" : ",") + std::string(kLevelNames[level]);
  }
  return names;
}

std::string PQDenseKernel::Prepare(const uint16_t* codes, const float* codebook, const float* bias, int n_centroids,
                                   int block_size, int in_features, int out_features, const std::string& variant) {
  if (n_centroids < 1 || block_size < 1 || in_features < 1 || out_features < 1 || in_features % block_size != 0) {
    return "bad PQ dense shape";
  }
  level_ = variant == "auto" ? BestLevel() : LevelOf(variant);
  if (level_ < 0) return "kernel variant '" + variant + "' is unknown or unsupported here (" + PQDenseVariants() + ")";
  variant_ = kLevelNames[level_];
  k_ = n_centroids;
  d_ = block_size;
  in_ = in_features;
  out_ = out_features;
  blocks_ = in_features / block_size;
  narrow_ = n_centroids <= 256;
  const size_t count = static_cast<size_t>(blocks_) * out_;
  codes8_.assign(narrow_ ? count : 0, 0);
  codes16_.assign(narrow_ ? 0 : count, 0);
  for (size_t i = 0; i < count; ++i) {
    if (narrow_) {
      codes8_[i] = static_cast<uint8_t>(codes[i]);
    } else {
      codes16_[i] = codes[i];
    }
  }
  codebook_t_.resize(static_cast<size_t>(k_) * d_);
  for (int c = 0; c < k_; ++c) {
    for (int t = 0; t < d_; ++t) codebook_t_[static_cast<size_t>(t) * k_ + c] = codebook[static_cast<size_t>(c) * d_ + t];
  }
  bias_.assign(static_cast<size_t>(out_), 0.0f);
  if (bias != nullptr) std::copy(bias, bias + out_, bias_.begin());
  return "";
}

void PQDenseKernel::LookupBlock(const float* table, int block, float* y) const {
  const size_t row = static_cast<size_t>(block) * out_;
#if TFC_PQ_X86
  if (level_ == 2) {
    return narrow_ ? LookupAvx512(table, codes8_.data() + row, out_, y)
                   : LookupAvx512(table, codes16_.data() + row, out_, y);
  }
  if (level_ == 1) {
    return narrow_ ? LookupAvx2(table, codes8_.data() + row, out_, y) : LookupAvx2(table, codes16_.data() + row, out_, y);
  }
#endif
  narrow_ ? LookupScalar(table, codes8_.data() + row, out_, y) : LookupScalar(table, codes16_.data() + row, out_, y);
}

void PQDenseKernel::RunPart(const float* x, int part, int parts, float* y) {
  const int b0 = static_cast<int>(static_cast<int64_t>(blocks_) * part / parts);
  const int b1 = static_cast<int>(static_cast<int64_t>(blocks_) * (part + 1) / parts);
  float* table = tables_.data() + static_cast<size_t>(part) * k_;
  float* acc = part == 0 ? y : partials_.data() + static_cast<size_t>(part - 1) * out_;
  if (part == 0) {
    std::copy(bias_.begin(), bias_.end(), acc);
  } else {
    std::fill(acc, acc + out_, 0.0f);
  }
  for (int b = b0; b < b1; ++b) {
    const float* xb = x + static_cast<size_t>(b) * d_;
#if TFC_PQ_X86
    if (level_ == 2) {
      TableAvx512(xb, codebook_t_.data(), k_, d_, table);
    } else if (level_ == 1) {
      TableAvx2(xb, codebook_t_.data(), k_, d_, table);
    } else
#endif
    {
      TableGeneric(xb, codebook_t_.data(), k_, d_, table);
    }
    LookupBlock(table, b, acc);
  }
}

void PQDenseKernel::Run(const float* input, int64_t rows, Activation activation, float* output, int threads) {
  // Small layers are not worth waking a second thread.
  const int parts = static_cast<int64_t>(blocks_) * out_ >= 65536 ? std::min(std::max(1, threads), blocks_) : 1;
  tables_.resize(static_cast<size_t>(parts) * k_);
  partials_.resize(static_cast<size_t>(parts - 1) * out_);
  for (int64_t r = 0; r < rows; ++r) {
    RowJob job{this, input + r * in_, output + r * out_, parts};
    ParallelFor(parts, parts, PartTask, &job);
    float* y = job.y;
    for (int part = 1; part < parts; ++part) {
      const float* partial = partials_.data() + static_cast<size_t>(part - 1) * out_;
      for (int j = 0; j < out_; ++j) y[j] += partial[j];
    }
    if (activation != Activation::kNone) {
      for (int j = 0; j < out_; ++j) y[j] = Activate(y[j], activation);
    }
  }
}

}  // namespace tfcompress
