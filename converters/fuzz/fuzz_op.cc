// libFuzzer target over one custom op (TFC_FUZZ_OP, set by fuzz.cmake): its option parsing and
// Prepare, or its weight decoder, with fuzzed options, tensor types, shapes and constant
// payloads; then, when Prepare accepted the node and the node is small, its Invoke on buffers
// of exactly the sizes Prepare gave. No TFLite runtime: the ops use only TfLiteContext's
// tensors, ResizeTensor and ReportError, which a fake context provides here.
//
// Input (little-endian; seed_corpus.py writes the shipped models' nodes this way):
//   u16 options_bytes, options (the node's flexbuffer custom options)
//   u8 inputs, u8 outputs (each mod 8)
//   per tensor, inputs then outputs:
//     u8 type (TfLiteType), u8 flags (1: constant, 2: absent (index -1)), u8 rank (mod 8),
//     rank x i32 dims, and for a constant: u32 bytes, then that many bytes of data
//   the rest: bytes that fill the non-constant inputs before Invoke (zeros when they run out)
// Whatever runs out early reads as zeros, so every input is a node.
//
// Checked beyond the sanitizers: a decoder's values match its shape; Prepare gives every
// output a shape with positive dims.
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "ops/binary_op_state.h"
#include "ops/tensor_checks.h"
#include "tflite/op_registry.h"

#ifndef TFC_FUZZ_OP
#error "define TFC_FUZZ_OP to the op's custom name"
#endif

namespace {

using tfcompress::FuzzInput;
using tfcompress::OpDef;
using tfcompress::OpNode;

// Invoke only nodes whose work (elements x constant bytes, padded image) stays under this,
// so one input runs in milliseconds.
constexpr int64_t kMaxInvokeCost = int64_t{1} << 24;

size_t ElementSize(TfLiteType type) {
  switch (type) {
    case kTfLiteFloat32:
    case kTfLiteInt32:
      return 4;
    case kTfLiteFloat16:
    case kTfLiteInt16:
      return 2;
    case kTfLiteInt64:
    case kTfLiteFloat64:
      return 8;
    default:
      return 1;
  }
}

// Elements of a shape, or -1 when a dim is not positive or the count passes 2^40.
int64_t Elements(const TfLiteIntArray* dims) {
  if (dims == nullptr) return -1;
  int64_t n = 1;
  for (int i = 0; i < dims->size; ++i) {
    if (dims->data[i] < 1 || n > (int64_t{1} << 40) / dims->data[i]) return -1;
    n *= dims->data[i];
  }
  return n;
}

void ReportError(TfLiteContext*, const char* format, ...) {
  char message[512];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);
}

// As TFLite's Subgraph::ResizeTensorImpl: a constant (kTfLiteMmapRo) tensor has a fixed size.
TfLiteStatus ResizeTensor(TfLiteContext*, TfLiteTensor* tensor, TfLiteIntArray* new_size) {
  std::free(tensor->dims);
  tensor->dims = new_size;
  if (tensor->allocation_type == kTfLiteMmapRo) return kTfLiteError;
  const int64_t n = Elements(new_size);
  tensor->bytes = n < 0 ? 0 : static_cast<size_t>(n) * ElementSize(tensor->type);
  return kTfLiteOk;
}

// The graph of one node: its tensors, owned here.
struct Graph {
  std::vector<TfLiteTensor> tensors;
  std::vector<std::vector<uint8_t>> constants;  // data of constant tensors, by tensor index
  std::vector<std::vector<uint8_t>> buffers;    // data of the other tensors, at Invoke
  OpNode node;
  TfLiteContext context;

  ~Graph() {
    for (TfLiteTensor& t : tensors) std::free(t.dims);
  }
};

void ReadTensors(FuzzInput* in, int count, std::vector<int>* indices, Graph* graph) {
  for (int i = 0; i < count; ++i) {
    TfLiteTensor t;
    std::memset(&t, 0, sizeof(t));
    t.type = static_cast<TfLiteType>(in->Uint(1) % (kTfLiteInt4 + 1));
    const uint64_t flags = in->Uint(1);
    const int rank = static_cast<int>(in->Uint(1) % 8);
    std::vector<int> dims(static_cast<size_t>(rank));
    for (int& d : dims) d = static_cast<int>(static_cast<int32_t>(in->Uint(4)));
    t.dims = tfcompress::NewShape(dims);
    std::vector<uint8_t> data;
    if (flags & 1) {
      data = in->Bytes(static_cast<size_t>(in->Uint(4)));
      t.allocation_type = kTfLiteMmapRo;
      t.bytes = data.size();
    } else {
      t.allocation_type = kTfLiteArenaRw;
      const int64_t n = Elements(t.dims);
      t.bytes = n < 0 ? 0 : static_cast<size_t>(n) * ElementSize(t.type);
    }
    indices->push_back((flags & 2) ? -1 : static_cast<int>(graph->tensors.size()));
    graph->tensors.push_back(t);
    graph->constants.push_back(std::move(data));
  }
}

void Build(FuzzInput* in, Graph* graph) {
  graph->node.options = in->Bytes(static_cast<size_t>(in->Uint(2)));
  const int inputs = static_cast<int>(in->Uint(1) % 8);
  const int outputs = static_cast<int>(in->Uint(1) % 8);
  ReadTensors(in, inputs, &graph->node.inputs, graph);
  ReadTensors(in, outputs, &graph->node.outputs, graph);
  for (size_t i = 0; i < graph->tensors.size(); ++i) {
    // Non-empty vectors keep their heap block when `constants` is not resized again.
    if (graph->tensors[i].allocation_type == kTfLiteMmapRo) {
      graph->tensors[i].data.raw = graph->constants[i].empty() ? nullptr
                                                               : reinterpret_cast<char*>(graph->constants[i].data());
    }
  }
  std::memset(&graph->context, 0, sizeof(graph->context));
  graph->context.tensors = graph->tensors.data();
  graph->context.tensors_size = graph->tensors.size();
  graph->context.ReportError = ReportError;
  graph->context.ResizeTensor = ResizeTensor;
  graph->node.num_threads = 1;
}

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz_op %s: %s\n", TFC_FUZZ_OP, what);
    std::abort();
  }
}

// The work Invoke would do, in rough element-operations: for the binary ops the padded bit
// image plus one word operation per output, tap and 64 input channels; for the others every
// non-constant element times the constant bytes.
int64_t InvokeCost(const OpDef& op, const Graph& graph) {
  int64_t elements = 0, constant_bytes = 1;
  for (const TfLiteTensor& t : graph.tensors) {
    if (t.allocation_type == kTfLiteMmapRo) {
      constant_bytes += static_cast<int64_t>(t.bytes);
    } else {
      const int64_t n = Elements(t.dims);
      if (n < 0) return -1;
      elements += n;
    }
  }
  if (std::strncmp(op.name, "TfcBinary", 9) != 0) return elements * constant_bytes;
  const tfcompress::ConvGeometry& g = static_cast<const tfcompress::BinaryOpState*>(graph.node.state)->geometry;
  int padded_h = 0, padded_w = 0;
  tfcompress::PaddedImageSize(g, &padded_h, &padded_w);
  const int64_t words = tfcompress::Words64(g.in_c);
  return elements + int64_t{g.batch} * padded_h * padded_w * words +
         int64_t{g.batch} * g.out_h * g.out_w * g.out_c * g.kernel_h * g.kernel_w * words;
}

void RunPrepareAndInvoke(const OpDef& op, FuzzInput* in, Graph* graph) {
  if (op.prepare(&graph->context, &graph->node) != kTfLiteOk) return;
  for (int index : graph->node.outputs) {
    if (index >= 0) Check(Elements(graph->tensors[static_cast<size_t>(index)].dims) > 0, "an output has an empty shape");
  }
  const int64_t cost = InvokeCost(op, *graph);
  if (cost < 0 || cost > kMaxInvokeCost) return;
  graph->buffers.resize(graph->tensors.size());
  for (size_t i = 0; i < graph->tensors.size(); ++i) {
    TfLiteTensor& t = graph->tensors[i];
    if (t.allocation_type == kTfLiteMmapRo) continue;
    std::vector<uint8_t>& buffer = graph->buffers[i];
    buffer = in->Bytes(t.bytes);
    buffer.resize(t.bytes + 1);  // + 1: never empty, so data.raw is set
    t.data.raw = reinterpret_cast<char*>(buffer.data());
  }
  op.invoke(&graph->context, &graph->node);
}

void RunDecode(const OpDef& op, Graph* graph) {
  std::vector<int> shape;
  std::vector<float> values;
  if (!op.decode(&graph->context, graph->node, &shape, &values).empty()) return;
  int64_t elements = 1;
  for (int d : shape) {
    Check(d > 0, "a decoded kernel has a dim < 1");
    elements *= d;
  }
  Check(!shape.empty() && static_cast<int64_t>(values.size()) == elements, "decoded values do not fill the shape");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const OpDef* op = tfcompress::FindOp(TFC_FUZZ_OP);
  Check(op != nullptr, "not in the op table");
  FuzzInput in(data, size);
  Graph graph;
  Build(&in, &graph);
  graph.node.state = op->create();
  if (op->decode != nullptr) {
    RunDecode(*op, &graph);
  } else {
    RunPrepareAndInvoke(*op, &in, &graph);
  }
  op->destroy(graph.node.state);
  return 0;
}
