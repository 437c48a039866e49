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
//   packed activations (op in/out): int32 [pixels][ceil(C / 32)], the same bit convention
//       (sign(0) = +1: bit = !(x >= 0)); unused high bits are 0 on output, ignored on input.
//   kernel activations:         uint64 [batch][padded_h][padded_w][ceil(C_in / 64)]: the
//       bit image with the padding built in (padded pixels are 0 bits = +1 values), so
//       every tap of every output pixel is in range and one loop serves border pixels too.
//   kernel weights:             uint64 [K_h * K_w][words64][C_out rounded up to 8]
//   nibble planes (kernels with KernelSet::nibble_planes, e.g. AVX2, which has no vector
//       popcount): every uint64 word w of the two kernel layouts above is stored as two
//       words, w & 0x0F0F... (low nibbles) then (w >> 4) & 0x0F0F... (high nibbles), so
//       "words64" doubles. popcount(x ^ w) is the sum over both planes, and each byte of
//       x_plane ^ w_plane is a nibble that indexes a 16-entry popcount table (PSHUFB) as is:
//       XOR + lookup + byte add per 128 bits, the masking and shifting done once at packing.
//
// One-padding is then exact without any correction. Zero padding subtracts, for a border
// pixel, the padded taps' contribution of the +1 bits: acc -= sum_{padded t} tapsum[t][c].
#ifndef TFCOMPRESS_KERNELS_BINARY_CONV_H_
#define TFCOMPRESS_KERNELS_BINARY_CONV_H_

#include <cstddef>
#include <cstdint>
#include <new>
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

// A std::allocator with 64-byte (cache-line, one zmm register) aligned blocks, so that the
// kernels' vector loads of weight rows never straddle two cache lines.
template <class T>
struct CacheAlignedAllocator {
  using value_type = T;
  static constexpr std::size_t kAlignment = 64;
  CacheAlignedAllocator() = default;
  template <class U>
  CacheAlignedAllocator(const CacheAlignedAllocator<U>&) {}  // NOLINT: rebinding must be implicit
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kAlignment)));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(kAlignment)); }
  template <class U>
  bool operator==(const CacheAlignedAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheAlignedAllocator<U>&) const { return false; }
};
using AlignedWords = std::vector<uint64_t, CacheAlignedAllocator<uint64_t>>;

inline int Words32(int channels) { return (channels + 31) / 32; }
inline int Words64(int channels) { return (channels + 63) / 64; }
inline int RoundUp8(int n) { return (n + 7) / 8 * 8; }

// Stores `word` as its two nibble planes (layouts above) at out[0], out[1].
inline void StoreNibblePlanes(uint64_t word, uint64_t* out) {
  constexpr uint64_t kLowNibbles = 0x0F0F0F0F0F0F0F0FULL;
  out[0] = word & kLowNibbles;
  out[1] = (word >> 4) & kLowNibbles;
}

// Arguments of one optimized convolution, in the layouts above.
struct BinaryConvArgs {
  ConvGeometry g;
  int words = 0;                         // uint64 words per input pixel: Words64(in_c), x2 for nibble planes
  int out_c_padded = 0;                  // RoundUp8(out_c)
  int padded_h = 0, padded_w = 0;        // the bit image, padding included (image at pad_top, pad_left)
  const uint64_t* input_bits = nullptr;  // [batch * padded_h * padded_w][words]
  const uint64_t* weights = nullptr;     // [taps][words][out_c_padded]
  const int32_t* tap_sums = nullptr;     // [taps][out_c_padded], used when pad_value == 0
  const float* multiplier = nullptr;     // [out_c]
  const float* bias = nullptr;           // [out_c]
  Activation activation = Activation::kNone;
  float* output = nullptr;               // [batch * out_h * out_w][out_c], or null and:
  int32_t* packed_output = nullptr;      // [batch * out_h * out_w][Words32(out_c)] bits of the outputs' signs
};

// One instruction-set variant: bit-packing of float activations (`words` uint64 per pixel,
// in nibble planes when `nibble_planes`) and the conv over a range of output rows
// (row = n * out_h + oy), so that threads can split the rows.
struct KernelSet {
  const char* name;
  void (*pack_activations)(const float* input, int64_t pixels, int channels, int words, uint64_t* bits);
  void (*conv_rows)(const BinaryConvArgs& args, int row_begin, int row_end);
  bool nibble_planes;  // activations and weights in nibble planes (layouts above)
};

// uint64 words per pixel (activations) or per tap (weights) in `kernel`'s layout.
inline int KernelWords(const KernelSet& kernel, int channels) {
  return Words64(channels) * (kernel.nibble_planes ? 2 : 1);
}

// Variants compiled in and supported by this CPU, best first ("avx512", "avx2", "neon",
// "scalar"). The environment variable TFCOMPRESS_KERNEL forces one by name.
std::vector<const KernelSet*> AvailableKernels();
const KernelSet* BestKernel();
const KernelSet* FindKernel(const std::string& name);  // nullptr when unknown or unsupported

// `kernel`'s weights layout from the file layout (see top). Returns the tap sums too.
void RepackWeights(const KernelSet& kernel, const ConvGeometry& g, const int32_t* file_weights,
                   AlignedWords* weights, std::vector<int32_t>* tap_sums);

// The portable reference: straight from the definition, float input and file-layout
// weights, no packing of activations. The oracle every optimized kernel is tested against.
void ReferenceBinaryConv(const ConvGeometry& g, const float* input, const int32_t* file_weights,
                         const float* multiplier, const float* bias, Activation activation, float* output);

// Runs `fn(begin, end)` over [0, tasks) split into contiguous ranges on up to `threads`
// threads (the caller's thread takes the first range).
void ParallelFor(int tasks, int threads, void (*fn)(void* ctx, int begin, int end), void* ctx);

// Activations in and out of one convolution: float, or bit-packed int32 (layout above).
// Exactly one input and one output pointer is set. A packed output holds the signs of the
// float output (bit = !(y >= 0)), i.e. the next binary layer's binarized input.
struct ConvBuffers {
  const float* input = nullptr;
  const int32_t* packed_input = nullptr;
  float* output = nullptr;
  int32_t* packed_output = nullptr;
};

// The bit image's padded size for `g` (see BinaryConvArgs::padded_h / padded_w).
void PaddedImageSize(const ConvGeometry& g, int* padded_h, int* padded_w);

// The whole optimized path: build the padded bit image (packing float input, or copying
// packed input), then run the rows on `threads` threads. `scratch` is resized as needed
// (reuse it between calls to avoid allocations).
void RunBinaryConv(const KernelSet& kernel, const ConvGeometry& g, const ConvBuffers& io,
                   const AlignedWords& weights, const std::vector<int32_t>& tap_sums,
                   const float* multiplier, const float* bias, Activation activation, int threads,
                   AlignedWords* scratch);

}  // namespace tfcompress

#endif  // TFCOMPRESS_KERNELS_BINARY_CONV_H_
