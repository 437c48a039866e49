// The table of custom ops the delegate claims. An op is a name (the CUSTOM op's
// custom_name in the .tflite file) plus four functions working on an OpNode: the original
// node's tensor indices and flexbuffer options, copied when the delegate claimed it.
// Adding an op = one OpDef in its own file + one line in op_registry.cc.
#ifndef TFCOMPRESS_TFLITE_OP_REGISTRY_H_
#define TFCOMPRESS_TFLITE_OP_REGISTRY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tensorflow/lite/core/c/common.h"

namespace tfcompress {

struct OpNode {
  std::vector<int> inputs;
  std::vector<int> outputs;
  std::vector<uint8_t> options;  // flexbuffer map (custom_initial_data), may be empty
  int num_threads = 1;
  void* state = nullptr;         // owned by the op (create / destroy)
};

// A weight decoder's single output as a function of its constant inputs: the shape and the
// float32 values, or a message naming the problem.
using DecodeFn = std::string (*)(TfLiteContext* context, const OpNode& node, std::vector<int>* shape,
                                 std::vector<float>* values);

struct OpDef {
  const char* name;
  void* (*create)();
  void (*destroy)(void* state);
  TfLiteStatus (*prepare)(TfLiteContext* context, OpNode* node);  // validate, resize outputs
  TfLiteStatus (*invoke)(TfLiteContext* context, OpNode* node);
  // Weight decoders only (then prepare and invoke are nullptr): the delegate calls it once
  // when it claims the node and turns the output into a read-only constant tensor
  // (kTfLiteMmapRo, memory owned by the delegate), so that the builtin op reading it, and
  // XNNPACK applied after our delegate, see static weights. See tflite/delegate.cc.
  DecodeFn decode = nullptr;
};

// The op called `custom_name`, or nullptr when it is not one of ours.
const OpDef* FindOp(const char* custom_name);

// Names of every op in the table, comma separated.
std::string OpNames();

// Reports "<op>: <message>" through the context and returns kTfLiteError.
TfLiteStatus OpError(TfLiteContext* context, const char* op, const std::string& message);

}  // namespace tfcompress

#endif  // TFCOMPRESS_TFLITE_OP_REGISTRY_H_
