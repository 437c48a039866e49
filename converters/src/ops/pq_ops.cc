// TfcPQDecode and TfcPQDense: the TFLite glue of the product-quantized kernels (pq_kernels.h).
//
// TfcPQDecode  inputs: 0 packed codes uint8 [bytes] (constant), 1 codebook float16 [k, d] (constant)
//              output: 0 float32 [C_out, kh, kw, C_in], decoded once when the delegate claims
//                      the node into a read-only constant tensor (OpDef::decode), so the
//                      builtin CONV_2D, or XNNPACK, reads it as static weights
//              options: block_size, n_centroids, code_bits, kernel_h, kernel_w, in_channels, out_channels
// TfcPQDense   inputs: 0 x float32 [..., C_in], 1 packed codes, 2 codebook float16 [k, d],
//                      3 bias float32 [C_out] (constants)
//              output: 0 float32 [..., C_out]
//              options: block_size, n_centroids, code_bits, in_features, out_features,
//                       activation "NONE" | "RELU" | "RELU6"
#include <string>
#include <vector>

#include "ops/binary_op_state.h"
#include "ops/pq_kernels.h"
#include "ops/tensor_checks.h"

namespace tfcompress {
namespace {

constexpr const char* kDecodeName = "TfcPQDecode";
constexpr const char* kDenseName = "TfcPQDense";

struct PQOptions {
  int64_t block_size = 0, n_centroids = 0, code_bits = 0;
};

int CodeBits(int64_t n_centroids) {
  int bits = 1;
  while ((int64_t{1} << bits) < n_centroids) ++bits;
  return bits;
}

bool GetPositive(const OpOptions& options, const char* key, int64_t* value, std::string* error) {
  if (!options.GetInt(key, -1, value, error)) return false;
  if (*value < 1 || *value > kMaxDim) {
    *error = std::string("option '") + key + "' is missing or out of range";
    return false;
  }
  return true;
}

bool ParsePQOptions(const OpOptions& options, PQOptions* pq, std::string* error) {
  if (!GetPositive(options, "block_size", &pq->block_size, error) ||
      !GetPositive(options, "n_centroids", &pq->n_centroids, error) ||
      !GetPositive(options, "code_bits", &pq->code_bits, error)) {
    return false;
  }
  if (pq->n_centroids > 65536 || pq->code_bits != CodeBits(pq->n_centroids)) {
    *error = "code_bits " + std::to_string(pq->code_bits) + " does not match n_centroids " +
             std::to_string(pq->n_centroids) + " (expected ceil(log2 k) <= 16)";
    return false;
  }
  return true;
}

// Unpacks the codes (input `codes_index`) and reads the float16 codebook (input `codebook_index`).
std::string ReadCodesAndCodebook(TfLiteContext* context, const OpNode& node, size_t codes_index,
                                 size_t codebook_index, const PQOptions& pq, int64_t count,
                                 std::vector<uint16_t>* codes, std::vector<float>* codebook) {
  const TfLiteTensor* packed = TensorAt(context, node.inputs, codes_index);
  const TfLiteTensor* book = TensorAt(context, node.inputs, codebook_index);
  std::string error = CheckTensor(packed, "packed codes", kTfLiteUInt8, 1, 1);
  if (error.empty()) error = CheckConstant(packed, "packed codes", 1);
  if (!error.empty()) return error;
  if (book == nullptr || book->type != kTfLiteFloat16) return "codebook must be float16";
  book = TensorAt(context, node.inputs, codebook_index);
  if (book->dims == nullptr || book->dims->size != 2 || book->dims->data[0] != pq.n_centroids ||
      book->dims->data[1] != pq.block_size) {
    return "codebook must have shape [" + std::to_string(pq.n_centroids) + ", " + std::to_string(pq.block_size) + "]";
  }
  error = CheckConstant(book, "codebook", 2);
  if (!error.empty()) return error;
  const int64_t needed = (count * pq.code_bits + 7) / 8;
  if (static_cast<int64_t>(packed->bytes) != needed) {
    return "packed codes hold " + std::to_string(packed->bytes) + " bytes, " + std::to_string(count) + " codes of " +
           std::to_string(pq.code_bits) + " bits need " + std::to_string(needed);
  }
  if (!UnpackCodes(packed->data.uint8, packed->bytes, static_cast<int>(pq.code_bits), count,
                   static_cast<int>(pq.n_centroids), codes)) {
    return "packed codes hold a code >= n_centroids";
  }
  const auto* half = reinterpret_cast<const uint16_t*>(book->data.raw);
  codebook->resize(static_cast<size_t>(pq.n_centroids * pq.block_size));
  for (size_t i = 0; i < codebook->size(); ++i) (*codebook)[i] = HalfToFloat(half[i]);
  return "";
}

// ---- TfcPQDecode ---------------------------------------------------------------------------

void* CreateNothing() { return nullptr; }
void DestroyNothing(void*) {}

std::string DecodeConstant(TfLiteContext* context, const OpNode& node, std::vector<int>* shape,
                           std::vector<float>* values) {
  if (node.inputs.size() != 2 || node.outputs.size() != 1) {
    return "expects 2 inputs (packed codes, codebook) and 1 output";
  }
  OpOptions options;
  PQOptions pq;
  std::string error;
  int64_t kh = 0, kw = 0, cin = 0, cout = 0;
  if (!options.Parse(node.options, &error) || !ParsePQOptions(options, &pq, &error) ||
      !GetPositive(options, "kernel_h", &kh, &error) || !GetPositive(options, "kernel_w", &kw, &error) ||
      !GetPositive(options, "in_channels", &cin, &error) || !GetPositive(options, "out_channels", &cout, &error)) {
    return error;
  }
  const int64_t rows = cin * kh * kw;
  if (rows % pq.block_size != 0) {
    return "block_size " + std::to_string(pq.block_size) + " does not divide C_in*kh*kw = " + std::to_string(rows);
  }
  if (rows * cout > kMaxDecodedElements) return "kernel is too large";
  std::vector<uint16_t> codes;
  std::vector<float> codebook;
  error = ReadCodesAndCodebook(context, node, 0, 1, pq, rows / pq.block_size * cout, &codes, &codebook);
  if (!error.empty()) return error;
  *shape = {static_cast<int>(cout), static_cast<int>(kh), static_cast<int>(kw), static_cast<int>(cin)};
  values->resize(static_cast<size_t>(rows * cout));
  DecodeKernelOhwi(codes.data(), codebook.data(), static_cast<int>(pq.block_size), static_cast<int>(kh),
                   static_cast<int>(kw), static_cast<int>(cin), static_cast<int>(cout), values->data());
  return "";
}

// ---- TfcPQDense ----------------------------------------------------------------------------

struct DenseState {
  PQDenseKernel kernel;
  Activation activation = Activation::kNone;
  int in_features = 0, out_features = 0;
};

void* CreateDense() { return new DenseState(); }
void DestroyDense(void* state) { delete static_cast<DenseState*>(state); }

TfLiteStatus DensePrepare(TfLiteContext* context, OpNode* node) {
  auto* state = static_cast<DenseState*>(node->state);
  if (node->inputs.size() != 4 || node->outputs.size() != 1) {
    return OpError(context, kDenseName, "expects 4 inputs (x, packed codes, codebook, bias) and 1 output");
  }
  OpOptions options;
  PQOptions pq;
  std::string error;
  int64_t in_features = 0, out_features = 0;
  if (!options.Parse(node->options, &error) || !ParsePQOptions(options, &pq, &error) ||
      !GetPositive(options, "in_features", &in_features, &error) ||
      !GetPositive(options, "out_features", &out_features, &error) ||
      !ParseActivation(options, &state->activation, &error)) {
    return OpError(context, kDenseName, error);
  }
  if (in_features % pq.block_size != 0) {
    return OpError(context, kDenseName,
                   "block_size " + std::to_string(pq.block_size) + " does not divide in_features " +
                       std::to_string(in_features));
  }
  const TfLiteTensor* input = TensorAt(context, node->inputs, 0);
  const TfLiteTensor* bias = TensorAt(context, node->inputs, 3);
  error = CheckTensor(input, "input", kTfLiteFloat32, 1, 6);
  if (error.empty()) error = CheckTensor(bias, "bias", kTfLiteFloat32, 1, 1);
  if (error.empty()) error = CheckConstant(bias, "bias", sizeof(float));
  if (!error.empty()) return OpError(context, kDenseName, error);
  const int rank = input->dims->size;
  if (input->dims->data[rank - 1] != in_features) {
    return OpError(context, kDenseName,
                   "input has " + std::to_string(input->dims->data[rank - 1]) + " features, in_features is " +
                       std::to_string(in_features));
  }
  if (bias->dims->data[0] != out_features) {
    return OpError(context, kDenseName, "bias has " + std::to_string(bias->dims->data[0]) + " values for " +
                                            std::to_string(out_features) + " outputs");
  }
  int64_t rows = 1;
  for (int i = 0; i < rank - 1; ++i) rows *= input->dims->data[i];
  if (rows * out_features > kMaxElements) return OpError(context, kDenseName, "output is too large");
  if (in_features / pq.block_size * pq.n_centroids > kMaxDecodedElements) {
    return OpError(context, kDenseName, "the lookup tables (in_features / block_size x n_centroids) are too large");
  }
  std::vector<uint16_t> codes;
  std::vector<float> codebook;
  error = ReadCodesAndCodebook(context, *node, 1, 2, pq, in_features / pq.block_size * out_features, &codes,
                               &codebook);
  if (error.empty()) {
    error = state->kernel.Prepare(codes.data(), codebook.data(), bias->data.f, static_cast<int>(pq.n_centroids),
                                  static_cast<int>(pq.block_size), static_cast<int>(in_features),
                                  static_cast<int>(out_features), "auto");
  }
  if (!error.empty()) return OpError(context, kDenseName, error);
  state->in_features = static_cast<int>(in_features);
  state->out_features = static_cast<int>(out_features);

  TfLiteTensor* output = TensorAt(context, node->outputs, 0);
  if (output == nullptr || output->type != kTfLiteFloat32) {
    return OpError(context, kDenseName, "output must be float32");
  }
  std::vector<int> shape(input->dims->data, input->dims->data + rank);
  shape.back() = static_cast<int>(out_features);
  return context->ResizeTensor(context, output, NewShape(shape));
}

TfLiteStatus DenseInvoke(TfLiteContext* context, OpNode* node) {
  auto* state = static_cast<DenseState*>(node->state);
  const TfLiteTensor* input = TensorAt(context, node->inputs, 0);
  TfLiteTensor* output = &context->tensors[node->outputs[0]];
  if (input == nullptr || input->data.f == nullptr || output->data.f == nullptr) {
    return OpError(context, kDenseName, "invoked without prepared tensors");
  }
  const int64_t rows = static_cast<int64_t>(input->bytes / sizeof(float)) / state->in_features;
  state->kernel.Run(input->data.f, rows, state->activation, output->data.f, node->num_threads);
  return kTfLiteOk;
}

}  // namespace

extern const OpDef kPQDecodeOp = {kDecodeName, CreateNothing, DestroyNothing, nullptr, nullptr, DecodeConstant};
extern const OpDef kPQDenseOp = {kDenseName, CreateDense, DestroyDense, DensePrepare, DenseInvoke};

}  // namespace tfcompress
