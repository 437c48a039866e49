// Small checks on TFLite tensors shared by the ops' Prepare functions. Each returns an
// empty string when the tensor is acceptable, else a message naming the problem.
#ifndef TFCOMPRESS_OPS_TENSOR_CHECKS_H_
#define TFCOMPRESS_OPS_TENSOR_CHECKS_H_

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "tensorflow/lite/core/c/common.h"

namespace tfcompress {

// Largest accepted dimension and element count (keeps every index inside int32/int64).
constexpr int64_t kMaxDim = 1 << 24;
constexpr int64_t kMaxElements = int64_t{1} << 31;
// Largest kernel a weight decoder builds, and largest PQ lookup table (float32 elements, 1 GiB):
// a few bytes of codes must not make the runtime allocate gigabytes.
constexpr int64_t kMaxDecodedElements = int64_t{1} << 28;

inline const char* TypeName(TfLiteType type) {
  switch (type) {
    case kTfLiteFloat32:
      return "float32";
    case kTfLiteInt32:
      return "int32";
    case kTfLiteUInt8:
      return "uint8";
    case kTfLiteInt8:
      return "int8";
    default:
      return "another type";
  }
}

inline std::string CheckTensor(const TfLiteTensor* t, const char* role, TfLiteType type, int min_rank, int max_rank) {
  const std::string name(role);
  if (t == nullptr) return name + " tensor is missing";
  if (t->type != type) return name + " must be " + TypeName(type) + ", got " + TypeName(t->type);
  if (t->dims == nullptr) return name + " has no shape";
  const int rank = t->dims->size;
  if (rank < min_rank || rank > max_rank) {
    return name + " must have rank " + std::to_string(min_rank) +
           (max_rank != min_rank ? "-" + std::to_string(max_rank) : "") + ", got " + std::to_string(rank);
  }
  int64_t elements = 1;
  for (int i = 0; i < rank; ++i) {
    if (t->dims->data[i] < 1 || t->dims->data[i] > kMaxDim) {
      return name + " dimension " + std::to_string(i) + " is " + std::to_string(t->dims->data[i]);
    }
    elements *= t->dims->data[i];
    if (elements > kMaxElements) return name + " is too large";
  }
  return "";
}

// A constant tensor whose byte size matches its shape and type (the packed weights).
inline std::string CheckConstant(const TfLiteTensor* t, const char* role, size_t element_size) {
  int64_t elements = 1;
  for (int i = 0; i < t->dims->size; ++i) elements *= t->dims->data[i];
  if (t->allocation_type != kTfLiteMmapRo || t->data.raw == nullptr) {
    return std::string(role) + " must be a constant tensor";
  }
  if (t->bytes != static_cast<size_t>(elements) * element_size) {
    return std::string(role) + " holds " + std::to_string(t->bytes) + " bytes, its shape needs " +
           std::to_string(elements * element_size);
  }
  return "";
}

// Tensor `indices[i]` of the graph, or nullptr when the node has no such input / output or the
// index is not a tensor of the graph (-1: an absent optional tensor).
inline TfLiteTensor* TensorAt(TfLiteContext* context, const std::vector<int>& indices, size_t i) {
  if (i >= indices.size() || indices[i] < 0 || static_cast<size_t>(indices[i]) >= context->tensors_size) {
    return nullptr;
  }
  return &context->tensors[indices[i]];
}

// A TfLiteIntArray allocated with malloc: ResizeTensor takes ownership and frees it with
// free(), and no TFLite library function (TfLiteIntArrayCreate) is needed.
inline TfLiteIntArray* NewShape(const std::vector<int>& dims) {
  auto* shape = static_cast<TfLiteIntArray*>(std::malloc(sizeof(int) * (dims.size() + 1)));
  shape->size = static_cast<int>(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) shape->data[i] = dims[i];
  return shape;
}

}  // namespace tfcompress

#endif  // TFCOMPRESS_OPS_TENSOR_CHECKS_H_
