#include "tflite/op_registry.h"

#include <cstring>

namespace tfcompress {

extern const OpDef kBinaryConv2DOp;
extern const OpDef kBinaryDenseOp;
extern const OpDef kPQDecodeOp, kPQDenseOp;  // ops/pq_ops.cc
extern const OpDef kSparseDecodeOp;  // ops/sparse_decode_op.cc

namespace {

const OpDef* const kOps[] = {
    &kBinaryConv2DOp,
    &kBinaryDenseOp,
    &kPQDecodeOp, &kPQDenseOp,
    &kSparseDecodeOp,
};

}  // namespace

const OpDef* FindOp(const char* custom_name) {
  if (custom_name == nullptr) return nullptr;
  for (const OpDef* op : kOps) {
    if (std::strcmp(op->name, custom_name) == 0) return op;
  }
  return nullptr;
}

std::string OpNames() {
  std::string names;
  for (const OpDef* op : kOps) names += (names.empty() ? "" : ",") + std::string(op->name);
  return names;
}

TfLiteStatus OpError(TfLiteContext* context, const char* op, const std::string& message) {
  context->ReportError(context, "%s: %s", op, message.c_str());
  return kTfLiteError;
}

}  // namespace tfcompress
