#include "ops/binary_op_state.h"

#include <algorithm>
#include <cstdint>

#include "ops/tensor_checks.h"

namespace tfcompress {

std::string CheckOutputTransform(TfLiteContext* context, const OpNode& node, int out_c) {
  const char* roles[] = {"multiplier", "bias"};
  for (size_t i = 2; i < 4; ++i) {
    const TfLiteTensor* t = TensorAt(context, node.inputs, i);
    std::string error = CheckTensor(t, roles[i - 2], kTfLiteFloat32, 1, 1);
    if (!error.empty()) return error;
    if (t->dims->data[0] != out_c) {
      return std::string(roles[i - 2]) + " has " + std::to_string(t->dims->data[0]) + " values for " +
             std::to_string(out_c) + " output channels";
    }
    if (t->data.raw != nullptr && t->bytes < static_cast<size_t>(out_c) * sizeof(float)) {
      return std::string(roles[i - 2]) + " holds " + std::to_string(t->bytes) + " bytes for " +
             std::to_string(out_c) + " float32 values";
    }
  }
  return "";
}

int UsefulThreads(const ConvGeometry& g, int threads) {
  const int64_t macs = static_cast<int64_t>(g.batch) * g.out_h * g.out_w * g.out_c * g.kernel_h * g.kernel_w * g.in_c;
  const int64_t useful = std::max<int64_t>(1, macs / kMinBinaryMacsPerThread);
  return static_cast<int>(std::min<int64_t>(std::max(threads, 1), useful));
}

TfLiteStatus InvokeBinaryOp(TfLiteContext* context, OpNode* node) {
  auto* state = static_cast<BinaryOpState*>(node->state);
  const TfLiteTensor* input = TensorAt(context, node->inputs, 0);
  const TfLiteTensor* multiplier = TensorAt(context, node->inputs, 2);
  const TfLiteTensor* bias = TensorAt(context, node->inputs, 3);
  TfLiteTensor* output = &context->tensors[node->outputs[0]];
  if (state->kernel == nullptr || input->data.raw == nullptr || output->data.raw == nullptr ||
      multiplier->data.f == nullptr || bias->data.f == nullptr) {
    context->ReportError(context, "tfcompress binary op invoked without prepared tensors");
    return kTfLiteError;
  }
  ConvBuffers io;
  if (state->packed_input) {
    io.packed_input = input->data.i32;
  } else {
    io.input = input->data.f;
  }
  if (state->packed_output) {
    io.packed_output = output->data.i32;
  } else {
    io.output = output->data.f;
  }
  RunBinaryConv(*state->kernel, state->geometry, io, state->weights, state->tap_sums, multiplier->data.f, bias->data.f,
                state->activation, UsefulThreads(state->geometry, node->num_threads), &state->scratch);
  return kTfLiteOk;
}

}  // namespace tfcompress
