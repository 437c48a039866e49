// A plain C entry to the kernels, for tests and benchmarks through ctypes
// (tfcompress/native.py): run one binary convolution with a named kernel, outside TFLite.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/binary_conv.h"
#include "tflite/op_registry.h"

#define TFC_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

void SetError(char* error, int error_size, const std::string& message) {
  if (error != nullptr && error_size > 0) std::snprintf(error, static_cast<size_t>(error_size), "%s", message.c_str());
}

std::string KernelNames() {
  std::string names = "reference";
  for (const tfcompress::KernelSet* kernel : tfcompress::AvailableKernels()) names += std::string(",") + kernel->name;
  return names;
}

}  // namespace

// Comma-separated kernels usable on this CPU ("reference" first), e.g. "reference,avx512,avx2,scalar".
TFC_EXPORT const char* tfc_kernels() {
  static const std::string names = KernelNames();
  return names.c_str();
}

// The kernel the ops use on this CPU (honours $TFCOMPRESS_KERNEL).
TFC_EXPORT const char* tfc_default_kernel() { return tfcompress::BestKernel()->name; }

// The custom ops the delegate claims, comma separated.
TFC_EXPORT const char* tfc_op_names() {
  static const std::string names = tfcompress::OpNames();
  return names.c_str();
}

// The 13-int geometry array of the C API (layout below) as a ConvGeometry, sizes not yet computed.
static tfcompress::ConvGeometry GeometryFromArray(const int* geometry) {
  tfcompress::ConvGeometry g;
  g.batch = geometry[0];
  g.in_h = geometry[1];
  g.in_w = geometry[2];
  g.in_c = geometry[3];
  g.out_c = geometry[4];
  g.kernel_h = geometry[5];
  g.kernel_w = geometry[6];
  g.stride_h = geometry[7];
  g.stride_w = geometry[8];
  g.dilation_h = geometry[9];
  g.dilation_w = geometry[10];
  g.pad_value = geometry[12];
  return g;
}

// geometry: batch, in_h, in_w, in_c, out_c, kernel_h, kernel_w, stride_h, stride_w,
// dilation_h, dilation_w, padding (0 VALID, 1 SAME), pad_value (0/1). Writes out_h, out_w.
// Returns 0, or -1 with `error` set.
TFC_EXPORT int tfc_conv_output_size(const int* geometry, int* out_hw, char* error, int error_size) {
  tfcompress::ConvGeometry g = GeometryFromArray(geometry);
  if (geometry[11] != 0 && geometry[11] != 1) {
    SetError(error, error_size, "padding must be 0 (VALID) or 1 (SAME)");
    return -1;
  }
  const std::string message = tfcompress::ComputeGeometry(static_cast<tfcompress::Padding>(geometry[11]), &g);
  if (!message.empty()) {
    SetError(error, error_size, message);
    return -1;
  }
  out_hw[0] = g.out_h;
  out_hw[1] = g.out_w;
  out_hw[2] = g.pad_top;
  out_hw[3] = g.pad_left;
  return 0;
}

// Runs the binary convolution with `kernel` ("reference" or a name from tfc_kernels()).
// Buffers: input [batch, in_h, in_w, in_c] float, or (packing & 1) int32 [.., ceil(in_c/32)]
// bit-packed signs; weights int32 [out_c, kernel_h, kernel_w, ceil(in_c/32)]; multiplier,
// bias [out_c]; output [batch, out_h, out_w, out_c] float, or (packing & 2) int32
// [.., ceil(out_c/32)] packed signs, `output_size` elements. The reference kernel unpacks a
// packed input to +-1 floats and packs its float output. Returns 0, or -1 with `error` set.
TFC_EXPORT int tfc_binary_conv2d_io(const char* kernel, const int* geometry, const void* input, const int32_t* weights,
                                    const float* multiplier, const float* bias, int activation, int threads,
                                    int packing, void* output, long long output_size, char* error, int error_size) {
  int out_hw[4];
  if (tfc_conv_output_size(geometry, out_hw, error, error_size) != 0) return -1;
  tfcompress::ConvGeometry g = GeometryFromArray(geometry);
  g.out_h = out_hw[0];
  g.out_w = out_hw[1];
  g.pad_top = out_hw[2];
  g.pad_left = out_hw[3];
  const bool packed_in = (packing & 1) != 0, packed_out = (packing & 2) != 0;
  const int64_t out_pixels = static_cast<int64_t>(g.batch) * g.out_h * g.out_w;
  if (packing < 0 || packing > 3) {
    SetError(error, error_size, "packing must be 0..3 (bit 0: packed input, bit 1: packed output)");
    return -1;
  }
  if (output_size != out_pixels * (packed_out ? tfcompress::Words32(g.out_c) : g.out_c)) {
    SetError(error, error_size, "output buffer has the wrong size");
    return -1;
  }
  if (activation < 0 || activation > 2) {
    SetError(error, error_size, "activation must be 0 (none), 1 (relu) or 2 (relu6)");
    return -1;
  }
  const auto act = static_cast<tfcompress::Activation>(activation);
  if (std::strcmp(kernel, "reference") == 0) {
    const int64_t in_pixels = static_cast<int64_t>(g.batch) * g.in_h * g.in_w;
    std::vector<float> unpacked, result;
    const float* x = static_cast<const float*>(input);
    if (packed_in) {
      const int32_t* bits = static_cast<const int32_t*>(input);
      unpacked.resize(static_cast<size_t>(in_pixels) * g.in_c);
      for (int64_t p = 0; p < in_pixels; ++p) {
        for (int c = 0; c < g.in_c; ++c) {
          const uint32_t word = static_cast<uint32_t>(bits[p * tfcompress::Words32(g.in_c) + c / 32]);
          unpacked[p * g.in_c + c] = (word >> (c % 32)) & 1u ? -1.0f : 1.0f;
        }
      }
      x = unpacked.data();
    }
    float* y = static_cast<float*>(output);
    if (packed_out) {
      result.resize(static_cast<size_t>(out_pixels) * g.out_c);
      y = result.data();
    }
    tfcompress::ReferenceBinaryConv(g, x, weights, multiplier, bias, act, y);
    if (packed_out) {
      int32_t* bits = static_cast<int32_t*>(output);
      const int words32 = tfcompress::Words32(g.out_c);
      std::memset(bits, 0, sizeof(int32_t) * out_pixels * words32);
      for (int64_t p = 0; p < out_pixels; ++p) {
        for (int c = 0; c < g.out_c; ++c) {
          if (!(y[p * g.out_c + c] >= 0.0f)) {
            bits[p * words32 + c / 32] = static_cast<int32_t>(static_cast<uint32_t>(bits[p * words32 + c / 32]) |
                                                              (1u << (c % 32)));
          }
        }
      }
    }
    return 0;
  }
  const tfcompress::KernelSet* set = std::strcmp(kernel, "auto") == 0 ? tfcompress::BestKernel()
                                                                       : tfcompress::FindKernel(kernel);
  if (set == nullptr) {
    SetError(error, error_size, std::string("kernel '") + kernel + "' is not available; have " + tfc_kernels());
    return -1;
  }
  tfcompress::AlignedWords packed, scratch;
  std::vector<int32_t> tap_sums;
  tfcompress::RepackWeights(*set, g, weights, &packed, &tap_sums);
  tfcompress::ConvBuffers io;
  if (packed_in) {
    io.packed_input = static_cast<const int32_t*>(input);
  } else {
    io.input = static_cast<const float*>(input);
  }
  if (packed_out) {
    io.packed_output = static_cast<int32_t*>(output);
  } else {
    io.output = static_cast<float*>(output);
  }
  tfcompress::RunBinaryConv(*set, g, io, packed, tap_sums, multiplier, bias, act, threads < 1 ? 1 : threads, &scratch);
  return 0;
}

// tfc_binary_conv2d_io with float input and output.
TFC_EXPORT int tfc_binary_conv2d(const char* kernel, const int* geometry, const float* input, const int32_t* weights,
                                 const float* multiplier, const float* bias, int activation, int threads,
                                 float* output, long long output_size, char* error, int error_size) {
  return tfc_binary_conv2d_io(kernel, geometry, input, weights, multiplier, bias, activation, threads, 0, output,
                              output_size, error, error_size);
}

// The core clock in GHz, for the benchmarks' cycle figures: a chain of dependent one-cycle
// integer adds, timed over `windows` windows of about a millisecond each; the fastest window
// (the least disturbed by other processes) counts. 0 on CPUs without the inline assembly.
TFC_EXPORT double tfc_clock_ghz(int windows) {
  constexpr long kAdds = 4'000'000;
  double best = 0.0;
  for (int w = 0; w < windows; ++w) {
    long value = 0;
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < kAdds; i += 8) {
#if defined(__x86_64__)
      asm volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                   "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                   : "+r"(value));
#elif defined(__aarch64__)
      asm volatile("add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
                   "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1"
                   : "+r"(value));
#else
      return 0.0;
#endif
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, kAdds / ns);
  }
  return best;
}
