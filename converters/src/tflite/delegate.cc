// The claiming delegate: an external-delegate plugin that takes over the CUSTOM nodes whose
// custom_name is in the op table.
//
// An interpreter keeps an unresolved CUSTOM op as a placeholder that a delegate may claim
// (the route the Flex delegate uses); with kTfLiteDelegateFlagsAllowDynamicTensors the
// delegate runs before the first Prepare, so the placeholder is never prepared. Each
// claimed node is replaced on its own by a delegate kernel that forwards Prepare and
// Invoke to the op, using the original node's tensors and custom options (copied here,
// before the replacement). XNNPACK, applied after user delegates, still takes the builtin
// ops around ours.
//
// Weight decoders (ops with OpDef::decode: TfcPQDecode, TfcSparseDecode) run here, in the
// delegate's Prepare: their output becomes a read-only constant tensor (kTfLiteMmapRo, the
// allocation type of the file's own weights) whose memory the delegate owns until it is
// destroyed (the Python runtimes destroy an interpreter before its delegates). Their node
// stays in the plan as a kernel that does nothing. The runtimes apply the default XNNPACK
// delegate lazily, at the first AllocateTensors, after the user delegates
// (Interpreter::AllocateTensors -> ApplyLazyDelegateProviders), so XNNPACK sees the decoded
// filters as static weights and takes the CONV_2D / FULLY_CONNECTED nodes that read them;
// without XNNPACK the builtin kernels read the same constant memory.
//
// Loaded with ai_edge_litert.interpreter.load_delegate(path, {"num_threads": "2"}),
// tf.lite.experimental.load_delegate or tflite_runtime's load_delegate.
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "tensorflow/lite/builtin_ops.h"
#include "tensorflow/lite/core/c/common.h"
#include "ops/tensor_checks.h"
#include "tflite/op_registry.h"

#define TFC_EXPORT extern "C" __attribute__((visibility("default")))

namespace tfcompress {
namespace {

struct ClaimedNode {
  const OpDef* op = nullptr;
  OpNode node;
};

struct DelegateState {
  int num_threads = 0;  // 0: the interpreter's thread count
  std::mutex mutex;
  std::map<std::pair<const TfLiteContext*, int>, ClaimedNode> claimed;  // by (context, node index)
  std::list<std::vector<float>> constants;  // decoded weights (a list: addresses never move)
};

struct KernelInstance {
  const OpDef* op;
  OpNode node;
};

DelegateState* StateOf(TfLiteDelegate* delegate) { return static_cast<DelegateState*>(delegate->data_); }

void* KernelInit(TfLiteContext* context, const char* buffer, size_t) {
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  if (params == nullptr || params->nodes_to_replace == nullptr || params->nodes_to_replace->size != 1) return nullptr;
  DelegateState* state = StateOf(params->delegate);
  std::lock_guard<std::mutex> lock(state->mutex);
  const auto it = state->claimed.find({context, params->nodes_to_replace->data[0]});
  if (it == state->claimed.end()) return nullptr;
  auto* instance = new KernelInstance{it->second.op, std::move(it->second.node)};
  state->claimed.erase(it);
  instance->node.state = instance->op->create();
  return instance;
}

void KernelFree(TfLiteContext*, void* buffer) {
  auto* instance = static_cast<KernelInstance*>(buffer);
  if (instance == nullptr) return;
  instance->op->destroy(instance->node.state);
  delete instance;
}

TfLiteStatus KernelPrepare(TfLiteContext* context, TfLiteNode* node) {
  auto* instance = static_cast<KernelInstance*>(node->user_data);
  if (instance == nullptr) {
    context->ReportError(context, "tfcompress delegate: a claimed node lost its op");
    return kTfLiteError;
  }
  if (instance->op->decode != nullptr) {  // decoded in DelegatePrepare: check it stayed constant
    const TfLiteTensor& output = context->tensors[instance->node.outputs[0]];
    if (output.allocation_type != kTfLiteMmapRo || output.data.raw == nullptr) {
      return OpError(context, instance->op->name, "the decoded kernel is no longer a constant tensor");
    }
    return kTfLiteOk;
  }
  return instance->op->prepare(context, &instance->node);
}

TfLiteStatus KernelInvoke(TfLiteContext* context, TfLiteNode* node) {
  auto* instance = static_cast<KernelInstance*>(node->user_data);
  if (instance == nullptr) return kTfLiteError;
  if (instance->op->decode != nullptr) return kTfLiteOk;  // a constant, decoded once
  return instance->op->invoke(context, &instance->node);
}

bool SameShape(const TfLiteIntArray* dims, const std::vector<int>& shape) {
  if (dims == nullptr || dims->size != static_cast<int>(shape.size())) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (dims->data[i] != shape[i]) return false;
  }
  return true;
}

std::string ShapeText(const std::vector<int>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// Runs a weight decoder and turns its output into a read-only constant owned by `state`.
TfLiteStatus DecodeToConstant(TfLiteContext* context, DelegateState* state, const OpDef& op, const OpNode& node) {
  if (node.outputs.size() != 1 || node.outputs[0] < 0 ||
      static_cast<size_t>(node.outputs[0]) >= context->tensors_size) {
    return OpError(context, op.name, "expects 1 output");
  }
  TfLiteTensor* output = &context->tensors[node.outputs[0]];
  if (output->type != kTfLiteFloat32) return OpError(context, op.name, "output must be float32");
  if (output->allocation_type == kTfLiteMmapRo && output->data.raw != nullptr) {
    return kTfLiteOk;  // this delegate was applied again (the interpreter redid its delegates)
  }
  if (output->allocation_type != kTfLiteArenaRw) {
    return OpError(context, op.name, "output must be an intermediate tensor of the graph");
  }
  std::vector<int> shape;
  std::vector<float> values;
  std::string error;
  try {  // an exception must not cross into the runtime (C): it would end the process
    error = op.decode(context, node, &shape, &values);
  } catch (const std::bad_alloc&) {
    error = "not enough memory for the decoded kernel";
  }
  if (!error.empty()) return OpError(context, op.name, error);
  if (output->dims != nullptr && output->dims->size > 0 && !SameShape(output->dims, shape)) {
    return OpError(context, op.name, "the decoded kernel's shape " + ShapeText(shape) + " is not its output's " +
                                         ShapeText(std::vector<int>(output->dims->data,
                                                                    output->dims->data + output->dims->size)));
  }
  // A file without the output's shape: resize while it is an arena tensor (a constant cannot be).
  if (!SameShape(output->dims, shape) && context->ResizeTensor(context, output, NewShape(shape)) != kTfLiteOk) {
    return OpError(context, op.name, "could not give the output the decoded kernel's shape");
  }
  if (output->bytes != values.size() * sizeof(float)) {
    return OpError(context, op.name, "output size does not match the decoded kernel");
  }
  std::lock_guard<std::mutex> lock(state->mutex);
  state->constants.push_back(std::move(values));
  output->data.raw = reinterpret_cast<char*>(state->constants.back().data());
  output->allocation_type = kTfLiteMmapRo;
  return kTfLiteOk;
}

std::vector<int> ToVector(const TfLiteIntArray* array) {
  if (array == nullptr) return {};
  return std::vector<int>(array->data, array->data + array->size);
}

TfLiteStatus DelegatePrepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  DelegateState* state = StateOf(delegate);
  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk) return kTfLiteError;
  const std::vector<int> node_indices = ToVector(plan);  // later calls invalidate `plan`
  const int threads = state->num_threads > 0 ? state->num_threads
                                             : (context->recommended_num_threads > 0 ? context->recommended_num_threads
                                                                                     : 1);
  std::vector<int> ours;
  for (int index : node_indices) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* registration = nullptr;
    if (context->GetNodeAndRegistration(context, index, &node, &registration) != kTfLiteOk) return kTfLiteError;
    if (registration->builtin_code != kTfLiteBuiltinCustom) continue;
    const OpDef* op = FindOp(registration->custom_name);
    if (op == nullptr) continue;
    ClaimedNode claimed;
    claimed.op = op;
    claimed.node.inputs = ToVector(node->inputs);
    claimed.node.outputs = ToVector(node->outputs);
    if (node->custom_initial_data != nullptr && node->custom_initial_data_size > 0) {
      const auto* bytes = static_cast<const uint8_t*>(node->custom_initial_data);
      claimed.node.options.assign(bytes, bytes + node->custom_initial_data_size);
    }
    claimed.node.num_threads = threads;
    if (op->decode != nullptr && DecodeToConstant(context, state, *op, claimed.node) != kTfLiteOk) {
      return kTfLiteError;
    }
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->claimed[{context, index}] = std::move(claimed);
    }
    ours.push_back(index);
  }
  for (int index : ours) {
    TfLiteRegistration kernel;
    std::memset(&kernel, 0, sizeof(kernel));
    kernel.init = KernelInit;
    kernel.free = KernelFree;
    kernel.prepare = KernelPrepare;
    kernel.invoke = KernelInvoke;
    kernel.builtin_code = kTfLiteBuiltinDelegate;
    kernel.custom_name = "TfcompressDelegateKernel";
    kernel.version = 1;
    auto* one_node = static_cast<TfLiteIntArray*>(std::malloc(2 * sizeof(int)));
    one_node->size = 1;
    one_node->data[0] = index;
    const TfLiteStatus status = context->ReplaceNodeSubsetsWithDelegateKernels(context, kernel, one_node, delegate);
    std::free(one_node);
    if (status != kTfLiteOk) return status;
  }
  return kTfLiteOk;
}

}  // namespace

TfLiteDelegate* CreateDelegate(int num_threads) {
  auto* delegate = static_cast<TfLiteDelegate*>(std::calloc(1, sizeof(TfLiteDelegate)));
  auto* state = new DelegateState();
  state->num_threads = num_threads;
  delegate->data_ = state;
  delegate->Prepare = DelegatePrepare;
  delegate->flags = kTfLiteDelegateFlagsAllowDynamicTensors;
  return delegate;
}

void DestroyDelegate(TfLiteDelegate* delegate) {
  if (delegate == nullptr) return;
  delete StateOf(delegate);
  std::free(delegate);
}

}  // namespace tfcompress

// External delegate plugin entry points (tensorflow/lite/delegates/external).
// Options: "num_threads" (threads for our kernels; default: the interpreter's).
TFC_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(char** options_keys, char** options_values,
                                                         size_t num_options, void (*report_error)(const char*)) {
  int num_threads = 0;
  for (size_t i = 0; i < num_options; ++i) {
    const char* key = options_keys[i];
    const char* value = options_values[i];
    if (key != nullptr && std::strcmp(key, "num_threads") == 0 && value != nullptr) {
      char* end = nullptr;
      const long parsed = std::strtol(value, &end, 10);
      if (end == value || *end != '\0' || parsed < 1 || parsed > 256) {
        if (report_error) report_error("tfcompress delegate: num_threads must be an integer in 1..256");
        return nullptr;
      }
      num_threads = static_cast<int>(parsed);
    } else {
      const std::string message = std::string("tfcompress delegate: unknown option '") + (key ? key : "") +
                                  "' (known: num_threads)";
      if (report_error) report_error(message.c_str());
      return nullptr;
    }
  }
  return tfcompress::CreateDelegate(num_threads);
}

TFC_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { tfcompress::DestroyDelegate(delegate); }
