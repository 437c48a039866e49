// State shared by the binary conv and dense ops: the validated geometry, the weights in
// the kernel's layout (re-packed once at Prepare) and the kernel chosen for this CPU.
#ifndef TFCOMPRESS_OPS_BINARY_OP_STATE_H_
#define TFCOMPRESS_OPS_BINARY_OP_STATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/binary_conv.h"
#include "tflite/op_registry.h"
#include "tflite/options.h"

namespace tfcompress {

struct BinaryOpState {
  ConvGeometry geometry;
  Activation activation = Activation::kNone;
  const KernelSet* kernel = nullptr;
  bool packed_input = false;   // int32 bit-packed input instead of float (conv only)
  bool packed_output = false;  // int32 bit-packed signs of the output instead of float (conv only)
  AlignedWords weights;
  std::vector<int32_t> tap_sums;
  AlignedWords scratch;
};

inline void* CreateBinaryOpState() { return new BinaryOpState(); }
inline void DestroyBinaryOpState(void* state) { delete static_cast<BinaryOpState*>(state); }

inline bool ParseActivation(const OpOptions& options, Activation* activation, std::string* error) {
  std::string name;
  if (!options.GetString("activation", "NONE", &name, error)) return false;
  if (name == "NONE") {
    *activation = Activation::kNone;
  } else if (name == "RELU") {
    *activation = Activation::kRelu;
  } else if (name == "RELU6") {
    *activation = Activation::kRelu6;
  } else {
    *error = "unknown activation '" + name + "' (expected NONE, RELU or RELU6)";
    return false;
  }
  return true;
}

// Checks multiplier and bias ([out_c] float32 each).
std::string CheckOutputTransform(TfLiteContext* context, const OpNode& node, int out_c);

// Work below which one more thread costs more than it saves: waking a pool thread and joining it
// takes a few microseconds, and the kernels do about 0.8 binary MACs per picosecond on one AVX2
// core, so an extra thread needs about 20 us of work. Measured on models/flowers_binary.tflite:
// every binary conv there runs 2.7-5.3 M MACs, and with them spread over 2 threads the model took
// 0.25-0.48 ms against 0.14 ms on 1 (benchmarks/results/models.md).
constexpr int64_t kMinBinaryMacsPerThread = 16 * 1000 * 1000;

// The threads worth using for `g` (binary MACs = batch * out_h * out_w * out_c * k_h * k_w * in_c),
// at most `threads`, at least 1.
int UsefulThreads(const ConvGeometry& g, int threads);

// Runs the op on its input and output tensors (float32, or int32 bit-packed as the state says;
// shapes already validated).
TfLiteStatus InvokeBinaryOp(TfLiteContext* context, OpNode* node);

}  // namespace tfcompress

#endif  // TFCOMPRESS_OPS_BINARY_OP_STATE_H_
