// A plain C entry to the kernels, for tests and benchmarks through ctypes
// (tfcompress/native.py): run one binary convolution with a named kernel, outside TFLite.
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

// geometry: batch, in_h, in_w, in_c, out_c, kernel_h, kernel_w, stride_h, stride_w,
// dilation_h, dilation_w, padding (0 VALID, 1 SAME), pad_value (0/1). Writes out_h, out_w.
// Returns 0, or -1 with `error` set.
TFC_EXPORT int tfc_conv_output_size(const int* geometry, int* out_hw, char* error, int error_size) {
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
// Buffers: input [batch, in_h, in_w, in_c]; weights int32 [out_c, kernel_h, kernel_w,
// ceil(in_c/32)]; multiplier, bias [out_c]; output [batch, out_h, out_w, out_c] with
// `output_size` elements. Returns 0, or -1 with `error` set.
TFC_EXPORT int tfc_binary_conv2d(const char* kernel, const int* geometry, const float* input, const int32_t* weights,
                                 const float* multiplier, const float* bias, int activation, int threads,
                                 float* output, long long output_size, char* error, int error_size) {
  int out_hw[4];
  if (tfc_conv_output_size(geometry, out_hw, error, error_size) != 0) return -1;
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
  g.out_h = out_hw[0];
  g.out_w = out_hw[1];
  g.pad_top = out_hw[2];
  g.pad_left = out_hw[3];
  if (output_size != static_cast<long long>(g.batch) * g.out_h * g.out_w * g.out_c) {
    SetError(error, error_size, "output buffer has the wrong size");
    return -1;
  }
  if (activation < 0 || activation > 2) {
    SetError(error, error_size, "activation must be 0 (none), 1 (relu) or 2 (relu6)");
    return -1;
  }
  const auto act = static_cast<tfcompress::Activation>(activation);
  if (std::strcmp(kernel, "reference") == 0) {
    tfcompress::ReferenceBinaryConv(g, input, weights, multiplier, bias, act, output);
    return 0;
  }
  const tfcompress::KernelSet* set = std::strcmp(kernel, "auto") == 0 ? tfcompress::BestKernel()
                                                                       : tfcompress::FindKernel(kernel);
  if (set == nullptr) {
    SetError(error, error_size, std::string("kernel '") + kernel + "' is not available; have " + tfc_kernels());
    return -1;
  }
  std::vector<uint64_t> packed, scratch;
  std::vector<int32_t> tap_sums;
  tfcompress::RepackWeights(g, weights, &packed, &tap_sums);
  tfcompress::RunBinaryConv(*set, g, input, packed, tap_sums, multiplier, bias, act, output, threads < 1 ? 1 : threads,
                            &scratch);
  return 0;
}
