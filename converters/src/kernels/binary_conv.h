// Binary (XNOR + popcount) convolution: the kernel interface, apart from any TFLite glue.
//
// Math (Rastegari et al. 2016, "XNOR-Net"; Hubara et al. 2016, "Binarized Neural Networks"):
// with x, w in {-1, +1} coded as bits (1 = negative, sign(0) = +1), a dot product of length
// K is  sum x_i w_i = K - 2 * popcount(xbits XOR wbits).  For an output pixel whose
// receptive field has V valid taps (inside the image) and P padded taps,
//
//   acc[c] = V * C_in - 2 * sum_{valid taps t} popcount(x_t XOR w_{c,t})
//            + pad_value * sum_{padded taps t} tapsum[t][c]
//   out[c] = act(multiplier[c] * acc[c] + bias[c])
//
// where tapsum[t][c] = sum_ci w[c,t,ci] (one-padding: padded inputs are +1) and zero
// padding (pad_value = 0) contributes nothing, exactly as Keras pads the binarized input.
//
// Data layouts (NHWC like TFLite):
//   packed weights in the file: int32 [C_out][K_h][K_w][ceil(C_in / 32)], bit b of word j
//       set <=> w[c, ky, kx, 32 j + b] < 0; unused high bits are 0.
//   packed activations:         uint64 [pixels][ceil(C_in / 64)], same bit convention.
//   kernel weights:             uint64 [K_h * K_w][words64][C_out rounded up to 8]
#ifndef TFCOMPRESS_KERNELS_BINARY_CONV_H_
#define TFCOMPRESS_KERNELS_BINARY_CONV_H_

#include <cstdint>
#include <string>
#include <vector>

namespace tfcompress {

enum class Activation : int { kNone = 0, kRelu = 1, kRelu6 = 2 };

// Everything that fixes the shape of one binary convolution (a dense layer is a 1x1 conv
// on a 1x1 image with `batch` rows).
struct ConvGeometry {
  int batch = 0, in_h = 0, in_w = 0, in_c = 0;
  int out_h = 0, out_w = 0, out_c = 0;
  int kernel_h = 0, kernel_w = 0;
  int stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int pad_top = 0, pad_left = 0;
  int pad_value = 0;  // 0: padded taps contribute 0; 1: padded inputs are +1
};

enum class Padding : int { kValid = 0, kSame = 1 };

// Fills out_h/out_w/pad_top/pad_left of `g` from the padding mode with TensorFlow's rules
// (SAME: out = ceil(in / stride), total = max((out-1)*stride + (k-1)*dilation + 1 - in, 0),
// the smaller half before). Returns an empty string or a message saying what is wrong.
std::string ComputeGeometry(Padding padding, ConvGeometry* g);

inline int Words32(int channels) { return (channels + 31) / 32; }
inline int Words64(int channels) { return (channels + 63) / 64; }
inline int RoundUp8(int n) { return (n + 7) / 8 * 8; }

// Arguments of one optimized convolution, in the layouts above.
struct BinaryConvArgs {
  ConvGeometry g;
  int words = 0;                         // uint64 words per input pixel: Words64(in_c)
  int out_c_padded = 0;                  // RoundUp8(out_c)
  const uint64_t* input_bits = nullptr;  // [batch * in_h * in_w][words]
  const uint64_t* weights = nullptr;     // [taps][words][out_c_padded]
  const int32_t* tap_sums = nullptr;     // [taps][out_c_padded], used when pad_value == 1
  const float* multiplier = nullptr;     // [out_c]
  const float* bias = nullptr;           // [out_c]
  Activation activation = Activation::kNone;
  float* output = nullptr;               // [batch * out_h * out_w][out_c]
};

// One instruction-set variant: bit-packing of float activations and the conv over a range
// of output rows (row = n * out_h + oy), so that threads can split the rows.
struct KernelSet {
  const char* name;
  void (*pack_activations)(const float* input, int64_t pixels, int channels, int words, uint64_t* bits);
  void (*conv_rows)(const BinaryConvArgs& args, int row_begin, int row_end);
};

// Variants compiled in and supported by this CPU, best first ("avx512", "avx2", "neon",
// "scalar"). The environment variable TFCOMPRESS_KERNEL forces one by name.
std::vector<const KernelSet*> AvailableKernels();
const KernelSet* BestKernel();
const KernelSet* FindKernel(const std::string& name);  // nullptr when unknown or unsupported

// Kernel-layout weights from the file layout (see top). Returns the tap sums too.
void RepackWeights(const ConvGeometry& g, const int32_t* file_weights, std::vector<uint64_t>* weights,
                   std::vector<int32_t>* tap_sums);

// The portable reference: straight from the definition, float input and file-layout
// weights, no packing of activations. The oracle every optimized kernel is tested against.
void ReferenceBinaryConv(const ConvGeometry& g, const float* input, const int32_t* file_weights,
                         const float* multiplier, const float* bias, Activation activation, float* output);

// Runs `fn(begin, end)` over [0, tasks) split into contiguous ranges on up to `threads`
// threads (the caller's thread takes the first range).
void ParallelFor(int tasks, int threads, void (*fn)(void* ctx, int begin, int end), void* ctx);

// The whole optimized path: pack activations, run the rows on `threads` threads.
// `scratch` is resized as needed (reuse it between calls to avoid allocations).
void RunBinaryConv(const KernelSet& kernel, const ConvGeometry& g, const float* input,
                   const std::vector<uint64_t>& weights, const std::vector<int32_t>& tap_sums,
                   const float* multiplier, const float* bias, Activation activation, float* output, int threads,
                   std::vector<uint64_t>* scratch);

}  // namespace tfcompress

#endif  // TFCOMPRESS_KERNELS_BINARY_CONV_H_
