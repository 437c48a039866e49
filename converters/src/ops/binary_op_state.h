// State shared by the binary conv and dense ops: the validated geometry, the weights in
// the kernel's layout (re-packed once at Prepare) and the kernel chosen for this CPU.
#ifndef TFCOMPRESS_OPS_BINARY_OP_STATE_H_
#define TFCOMPRESS_OPS_BINARY_OP_STATE_H_

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

// Runs the op on its input and output tensors (float32, or int32 bit-packed as the state says;
// shapes already validated).
TfLiteStatus InvokeBinaryOp(TfLiteContext* context, OpNode* node);

}  // namespace tfcompress

#endif  // TFCOMPRESS_OPS_BINARY_OP_STATE_H_
