// TfcBinaryConv2D: y = act(multiplier * binary_conv(sign(x), sign(W)) + bias), NHWC.
//
// Inputs:  0 x float32 [N, H, W, C_in], or its signs bit-packed: int32 [N, H, W, ceil(C_in / 32)]
//          1 packed weights int32 [C_out, K_h, K_w, ceil(C_in / 32)] (constant)
//          2 multiplier float32 [C_out]   3 bias float32 [C_out]
// Output:  0 float32 [N, H_out, W_out, C_out], or (int32 output tensor) the signs of those
//          values bit-packed, int32 [N, H_out, W_out, ceil(C_out / 32)]: what a following
//          binary layer takes as its packed input (Larq Compute Engine's "bitpacked output").
// Packed activations: bit b of word j set <=> channel 32 j + b is negative (sign(0) = +1),
// the packed weights' convention; the tensor types select float or packed, nothing else.
// Options: in_channels (required), stride_height, stride_width, dilation_height,
//          dilation_width (default 1), padding "SAME" | "VALID" (required),
//          pad_value 0 | 1 (default 0), activation "NONE" | "RELU" | "RELU6".
#include "ops/binary_op_state.h"
#include "ops/tensor_checks.h"

namespace tfcompress {
namespace {

constexpr const char* kName = "TfcBinaryConv2D";

std::string ReadGeometry(const OpOptions& options, ConvGeometry* g, Padding* padding) {
  std::string error;
  int64_t values[6];
  const char* keys[] = {"stride_height", "stride_width", "dilation_height", "dilation_width", "pad_value",
                        "in_channels"};
  const int64_t defaults[] = {1, 1, 1, 1, 0, -1};
  for (int i = 0; i < 6; ++i) {
    if (!options.GetInt(keys[i], defaults[i], &values[i], &error)) return error;
    if (values[i] > kMaxDim || values[i] < -1) return std::string("option '") + keys[i] + "' is out of range";
  }
  if (!options.Has("in_channels")) return "option 'in_channels' is missing";
  g->stride_h = static_cast<int>(values[0]);
  g->stride_w = static_cast<int>(values[1]);
  g->dilation_h = static_cast<int>(values[2]);
  g->dilation_w = static_cast<int>(values[3]);
  g->pad_value = static_cast<int>(values[4]);
  g->in_c = static_cast<int>(values[5]);
  std::string name;
  if (!options.GetString("padding", "", &name, &error)) return error;
  if (name == "SAME") {
    *padding = Padding::kSame;
  } else if (name == "VALID") {
    *padding = Padding::kValid;
  } else {
    return "unknown padding '" + name + "' (expected SAME or VALID)";
  }
  return "";
}

TfLiteStatus Prepare(TfLiteContext* context, OpNode* node) {
  auto* state = static_cast<BinaryOpState*>(node->state);
  if (node->inputs.size() != 4 || node->outputs.size() != 1) {
    return OpError(context, kName, "expects 4 inputs (x, packed weights, multiplier, bias) and 1 output");
  }
  OpOptions options;
  std::string error;
  if (!options.Parse(node->options, &error)) return OpError(context, kName, error);
  ConvGeometry g;
  Padding padding = Padding::kValid;
  error = ReadGeometry(options, &g, &padding);
  if (error.empty() && !ParseActivation(options, &state->activation, &error)) return OpError(context, kName, error);
  if (!error.empty()) return OpError(context, kName, error);

  const TfLiteTensor* input = TensorAt(context, node->inputs, 0);
  const TfLiteTensor* weights = TensorAt(context, node->inputs, 1);
  const bool packed_input = input != nullptr && input->type == kTfLiteInt32;
  error = CheckTensor(input, "input", packed_input ? kTfLiteInt32 : kTfLiteFloat32, 4, 4);
  if (error.empty()) error = CheckTensor(weights, "packed weights", kTfLiteInt32, 4, 4);
  if (error.empty()) error = CheckConstant(weights, "packed weights", sizeof(int32_t));
  if (!error.empty()) return OpError(context, kName, error);
  if (packed_input && input->dims->data[3] != Words32(g.in_c)) {
    return OpError(context, kName,
                   "packed input has " + std::to_string(input->dims->data[3]) + " words per pixel, " +
                       std::to_string(g.in_c) + " input channels need " + std::to_string(Words32(g.in_c)));
  }
  if (!packed_input && input->dims->data[3] != g.in_c) {
    return OpError(context, kName,
                   "input has " + std::to_string(input->dims->data[3]) + " channels, in_channels is " +
                       std::to_string(g.in_c));
  }
  if (weights->dims->data[3] != Words32(g.in_c)) {
    return OpError(context, kName,
                   "packed weights have " + std::to_string(weights->dims->data[3]) + " words per tap, " +
                       std::to_string(g.in_c) + " input channels need " + std::to_string(Words32(g.in_c)));
  }
  g.batch = input->dims->data[0];
  g.in_h = input->dims->data[1];
  g.in_w = input->dims->data[2];
  g.out_c = weights->dims->data[0];
  g.kernel_h = weights->dims->data[1];
  g.kernel_w = weights->dims->data[2];
  error = ComputeGeometry(padding, &g);
  if (error.empty()) error = CheckOutputTransform(context, *node, g.out_c);
  if (!error.empty()) return OpError(context, kName, error);

  TfLiteTensor* output = TensorAt(context, node->outputs, 0);
  if (output == nullptr || (output->type != kTfLiteFloat32 && output->type != kTfLiteInt32)) {
    return OpError(context, kName, "output must be float32, or int32 for bit-packed signs");
  }
  const bool packed_output = output->type == kTfLiteInt32;
  int padded_h = 0, padded_w = 0;
  PaddedImageSize(g, &padded_h, &padded_w);
  if (static_cast<int64_t>(g.batch) * g.out_h * g.out_w * g.out_c > kMaxElements ||
      static_cast<int64_t>(g.batch) * padded_h * padded_w * Words64(g.in_c) > kMaxElements) {
    return OpError(context, kName, "output is too large");
  }
  state->geometry = g;
  state->kernel = BestKernel();
  state->packed_input = packed_input;
  state->packed_output = packed_output;
  RepackWeights(*state->kernel, g, weights->data.i32, &state->weights, &state->tap_sums);
  const int out_last = packed_output ? Words32(g.out_c) : g.out_c;
  return context->ResizeTensor(context, output, NewShape({g.batch, g.out_h, g.out_w, out_last}));
}

}  // namespace

extern const OpDef kBinaryConv2DOp = {kName, CreateBinaryOpState, DestroyBinaryOpState, Prepare, InvokeBinaryOp};

}  // namespace tfcompress
