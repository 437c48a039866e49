// TfcBinaryDense: y = act(multiplier * (sign(x) . sign(W)) + bias) over the last axis.
//
// Inputs:  0 x float32 [..., C_in]
//          1 packed weights int32 [C_out, ceil(C_in / 32)] (constant)
//          2 multiplier float32 [C_out]   3 bias float32 [C_out]
// Output:  0 float32 [..., C_out]
// Options: in_channels (required), activation "NONE" | "RELU" | "RELU6".
// Runs on the conv kernels as a 1x1 convolution of a 1x1 image with one row per vector.
#include "ops/binary_op_state.h"
#include "ops/tensor_checks.h"

namespace tfcompress {
namespace {

constexpr const char* kName = "TfcBinaryDense";

TfLiteStatus Prepare(TfLiteContext* context, OpNode* node) {
  auto* state = static_cast<BinaryOpState*>(node->state);
  if (node->inputs.size() != 4 || node->outputs.size() != 1) {
    return OpError(context, kName, "expects 4 inputs (x, packed weights, multiplier, bias) and 1 output");
  }
  OpOptions options;
  std::string error;
  int64_t in_channels = 0;
  if (!options.Parse(node->options, &error) || !options.GetInt("in_channels", -1, &in_channels, &error) ||
      !ParseActivation(options, &state->activation, &error)) {
    return OpError(context, kName, error);
  }
  if (in_channels < 1 || in_channels > kMaxDim) return OpError(context, kName, "option 'in_channels' is missing");

  const TfLiteTensor* input = TensorAt(context, node->inputs, 0);
  const TfLiteTensor* weights = TensorAt(context, node->inputs, 1);
  error = CheckTensor(input, "input", kTfLiteFloat32, 1, 6);
  if (error.empty()) error = CheckTensor(weights, "packed weights", kTfLiteInt32, 2, 2);
  if (error.empty()) error = CheckConstant(weights, "packed weights", sizeof(int32_t));
  if (!error.empty()) return OpError(context, kName, error);
  const int rank = input->dims->size;
  if (input->dims->data[rank - 1] != in_channels) {
    return OpError(context, kName,
                   "input has " + std::to_string(input->dims->data[rank - 1]) + " features, in_channels is " +
                       std::to_string(in_channels));
  }
  if (weights->dims->data[1] != Words32(static_cast<int>(in_channels))) {
    return OpError(context, kName,
                   "packed weights have " + std::to_string(weights->dims->data[1]) + " words per row, " +
                       std::to_string(in_channels) + " input features need " +
                       std::to_string(Words32(static_cast<int>(in_channels))));
  }
  ConvGeometry g;
  g.batch = 1;
  for (int i = 0; i < rank - 1; ++i) g.batch *= input->dims->data[i];
  g.in_h = g.in_w = g.kernel_h = g.kernel_w = 1;
  g.in_c = static_cast<int>(in_channels);
  g.out_c = weights->dims->data[0];
  error = ComputeGeometry(Padding::kValid, &g);
  if (error.empty()) error = CheckOutputTransform(context, *node, g.out_c);
  if (!error.empty()) return OpError(context, kName, error);
  if (static_cast<int64_t>(g.batch) * g.out_c > kMaxElements) return OpError(context, kName, "output is too large");

  TfLiteTensor* output = TensorAt(context, node->outputs, 0);
  if (output == nullptr || output->type != kTfLiteFloat32) return OpError(context, kName, "output must be float32");
  state->geometry = g;
  state->kernel = BestKernel();
  RepackWeights(*state->kernel, g, weights->data.i32, &state->weights, &state->tap_sums);
  std::vector<int> shape(input->dims->data, input->dims->data + rank);
  shape.back() = g.out_c;
  return context->ResizeTensor(context, output, NewShape(shape));
}

}  // namespace

extern const OpDef kBinaryDenseOp = {kName, CreateBinaryOpState, DestroyBinaryOpState, Prepare, InvokeBinaryOp};

}  // namespace tfcompress
