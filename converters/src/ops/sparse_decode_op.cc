// TfcSparseDecode: a Deep Compression kernel (sparse_decode.h) decoded once, when the
// delegate claims the node (OpDef::decode), into a read-only constant tensor.
//
// inputs:  0 gap stream uint8 [bytes], 1 index stream uint8 [bytes],
//          2 gap code lengths uint8 [2^gap_bits], 3 index code lengths uint8 [2^weight_bits],
//          4 codebook float32 [2^weight_bits]                                  (all constants)
// output:  0 float32 kernel of shape [dim0, .., dim{rank-1}] in the layout its consumer
//          reads (CONV_2D: [C_out, kh, kw, C_in]; FULLY_CONNECTED: [C_out, C_in]),
//          a constant (kTfLiteMmapRo) tensor owned by the delegate, which XNNPACK and the
//          builtin kernels read as static weights.
// options: entries, gap_bits (0: dense mode, the gap stream is a 1-byte placeholder that is not
//          read), weight_bits, rank, dim0 .. dim3
#include <string>
#include <vector>

#include "ops/sparse_decode.h"
#include "ops/tensor_checks.h"
#include "tflite/op_registry.h"
#include "tflite/options.h"

namespace tfcompress {
namespace {

constexpr const char* kName = "TfcSparseDecode";

void* CreateNothing() { return nullptr; }
void DestroyNothing(void*) {}

std::string ConstantBytes(TfLiteContext* context, const OpNode& node, size_t i, const char* role, size_t expected,
                          const uint8_t** data, size_t* bytes) {
  const TfLiteTensor* t = TensorAt(context, node.inputs, i);
  std::string error = CheckTensor(t, role, kTfLiteUInt8, 1, 1);
  if (error.empty()) error = CheckConstant(t, role, 1);
  if (!error.empty()) return error;
  if (expected != 0 && t->bytes != expected) {
    return std::string(role) + " must hold " + std::to_string(expected) + " bytes, got " + std::to_string(t->bytes);
  }
  *data = t->data.uint8;
  *bytes = t->bytes;
  return "";
}

std::string Decode(TfLiteContext* context, const OpNode& node, std::vector<int>* shape, std::vector<float>* values) {
  if (node.inputs.size() != 5 || node.outputs.size() != 1) {
    return "expects 5 inputs (gaps, indices, gap lengths, index lengths, codebook), 1 output";
  }
  OpOptions options;
  std::string error;
  int64_t entries = -1, gap_bits = 0, weight_bits = 0, rank = 0;
  if (!options.Parse(node.options, &error) || !options.GetInt("entries", -1, &entries, &error) ||
      !options.GetInt("gap_bits", 0, &gap_bits, &error) || !options.GetInt("weight_bits", 0, &weight_bits, &error) ||
      !options.GetInt("rank", 0, &rank, &error)) {
    return error;
  }
  if (entries < 0 || gap_bits < 0 || gap_bits > 8 || weight_bits < 1 || weight_bits > 8 || rank < 1 || rank > 4) {
    return "options entries >= 0, gap_bits in [0, 8] (0: dense mode), weight_bits in [1, 8], rank in [1, 4] needed";
  }
  shape->clear();
  int64_t size = 1;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t dim = 0;
    const std::string key = "dim" + std::to_string(d);
    if (!options.GetInt(key.c_str(), 0, &dim, &error) || dim < 1 || dim > kMaxDim) {
      return "option '" + key + "' is missing or out of range";
    }
    shape->push_back(static_cast<int>(dim));
    size *= dim;
    if (size > kMaxDecodedElements) return "kernel is too large";
  }
  SparseStreams streams;
  streams.entries = entries;
  streams.gap_bits = static_cast<int>(gap_bits);
  streams.weight_bits = static_cast<int>(weight_bits);
  size_t unused = 0;
  error = ConstantBytes(context, node, 0, "gap stream", 0, &streams.gap_data, &streams.gap_bytes);
  if (error.empty()) error = ConstantBytes(context, node, 1, "index stream", 0, &streams.index_data, &streams.index_bytes);
  if (error.empty()) {
    error = ConstantBytes(context, node, 2, "gap code lengths", size_t{1} << gap_bits, &streams.gap_lengths, &unused);
  }
  if (error.empty()) {
    error = ConstantBytes(context, node, 3, "index code lengths", size_t{1} << weight_bits, &streams.index_lengths,
                          &unused);
  }
  if (!error.empty()) return error;
  const TfLiteTensor* codebook = TensorAt(context, node.inputs, 4);
  error = CheckTensor(codebook, "codebook", kTfLiteFloat32, 1, 1);
  if (error.empty()) error = CheckConstant(codebook, "codebook", sizeof(float));
  if (error.empty() && codebook->dims->data[0] != (1 << weight_bits)) {
    error = "codebook must have 2^weight_bits = " + std::to_string(1 << weight_bits) + " entries";
  }
  if (!error.empty()) return error;
  streams.codebook = codebook->data.f;
  values->resize(static_cast<size_t>(size));
  if (!SparseDecode(streams, values->data(), size, &error)) return error;
  return "";
}

}  // namespace

extern const OpDef kSparseDecodeOp = {kName, CreateNothing, DestroyNothing, nullptr, nullptr, Decode};

}  // namespace tfcompress
