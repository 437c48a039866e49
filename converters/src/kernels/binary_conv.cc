// Geometry, weight re-layout, the reference kernel and the choice of optimized kernel.
#include "kernels/binary_conv.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/kernel_sets.h"

namespace tfcompress {

std::string ComputeGeometry(Padding padding, ConvGeometry* g) {
  if (g->batch < 1 || g->in_h < 1 || g->in_w < 1 || g->in_c < 1)
    return "input must have positive batch, height, width and channels";
  if (g->out_c < 1 || g->kernel_h < 1 || g->kernel_w < 1) return "filter must have positive size and channels";
  if (g->stride_h < 1 || g->stride_w < 1) return "strides must be >= 1";
  if (g->dilation_h < 1 || g->dilation_w < 1) return "dilation rates must be >= 1";
  if (g->pad_value != 0 && g->pad_value != 1) return "pad_value must be 0 or 1";
  const int64_t span_h = static_cast<int64_t>(g->kernel_h - 1) * g->dilation_h + 1;
  const int64_t span_w = static_cast<int64_t>(g->kernel_w - 1) * g->dilation_w + 1;
  int64_t out_h, out_w, pad_top = 0, pad_left = 0;
  if (padding == Padding::kSame) {
    out_h = (g->in_h + g->stride_h - 1) / g->stride_h;
    out_w = (g->in_w + g->stride_w - 1) / g->stride_w;
    pad_top = std::max<int64_t>((out_h - 1) * g->stride_h + span_h - g->in_h, 0) / 2;
    pad_left = std::max<int64_t>((out_w - 1) * g->stride_w + span_w - g->in_w, 0) / 2;
  } else {
    out_h = g->in_h >= span_h ? (g->in_h - span_h) / g->stride_h + 1 : 0;
    out_w = g->in_w >= span_w ? (g->in_w - span_w) / g->stride_w + 1 : 0;
  }
  if (out_h < 1 || out_w < 1) return "the filter (with dilation) is larger than the input for VALID padding";
  g->out_h = static_cast<int>(out_h);
  g->out_w = static_cast<int>(out_w);
  g->pad_top = static_cast<int>(pad_top);
  g->pad_left = static_cast<int>(pad_left);
  return "";
}

void RepackWeights(const KernelSet& kernel, const ConvGeometry& g, const int32_t* file_weights,
                   AlignedWords* weights, std::vector<int32_t>* tap_sums) {
  const int taps = g.kernel_h * g.kernel_w;
  const int words32 = Words32(g.in_c);
  const int words = Words64(g.in_c);
  const int planes = kernel.nibble_planes ? 2 : 1;
  const int ocp = RoundUp8(g.out_c);
  weights->assign(static_cast<size_t>(taps) * words * planes * ocp, 0);
  tap_sums->assign(static_cast<size_t>(taps) * ocp, 0);
  for (int c = 0; c < g.out_c; ++c) {
    for (int t = 0; t < taps; ++t) {
      const int32_t* src = file_weights + (static_cast<int64_t>(c) * taps + t) * words32;
      int negatives = 0;
      for (int k = 0; k < words; ++k) {
        uint64_t word = 0;
        for (int j = 2 * k; j < std::min(2 * k + 2, words32); ++j) {
          // Only the bits of real channels count (padding bits are ignored even if set).
          const int valid = std::min(32, g.in_c - 32 * j);
          uint32_t half = static_cast<uint32_t>(src[j]);
          if (valid < 32) half &= (1u << valid) - 1u;
          word |= static_cast<uint64_t>(half) << (32 * (j % 2));
          negatives += __builtin_popcount(half);
        }
        uint64_t* dst = weights->data() + (static_cast<size_t>(t) * words + k) * planes * ocp + c;
        if (planes == 2) {
          uint64_t split[2];
          StoreNibblePlanes(word, split);
          dst[0] = split[0];
          dst[ocp] = split[1];
        } else {
          dst[0] = word;
        }
      }
      (*tap_sums)[static_cast<size_t>(t) * ocp + c] = g.in_c - 2 * negatives;
    }
  }
}

void ReferenceBinaryConv(const ConvGeometry& g, const float* input, const int32_t* file_weights,
                         const float* multiplier, const float* bias, Activation activation, float* output) {
  const int words32 = Words32(g.in_c);
  for (int n = 0; n < g.batch; ++n) {
    for (int oy = 0; oy < g.out_h; ++oy) {
      for (int ox = 0; ox < g.out_w; ++ox) {
        for (int co = 0; co < g.out_c; ++co) {
          int64_t acc = 0;
          for (int ky = 0; ky < g.kernel_h; ++ky) {
            for (int kx = 0; kx < g.kernel_w; ++kx) {
              const int iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
              const int ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
              const bool inside = iy >= 0 && iy < g.in_h && ix >= 0 && ix < g.in_w;
              if (!inside && g.pad_value == 0) continue;
              const int32_t* w = file_weights + ((static_cast<int64_t>(co) * g.kernel_h + ky) * g.kernel_w + kx) * words32;
              for (int ci = 0; ci < g.in_c; ++ci) {
                int x = 1;
                if (inside) {
                  const float v = input[((static_cast<int64_t>(n) * g.in_h + iy) * g.in_w + ix) * g.in_c + ci];
                  x = v >= 0.0f ? 1 : -1;
                }
                const int weight = ((static_cast<uint32_t>(w[ci / 32]) >> (ci % 32)) & 1u) ? -1 : 1;
                acc += x * weight;
              }
            }
          }
          float y = multiplier[co] * static_cast<float>(acc) + bias[co];
          if (activation == Activation::kRelu) y = std::max(0.0f, y);
          if (activation == Activation::kRelu6) y = std::min(6.0f, std::max(0.0f, y));
          output[((static_cast<int64_t>(n) * g.out_h + oy) * g.out_w + ox) * g.out_c + co] = y;
        }
      }
    }
  }
}

namespace {

bool CpuSupports(const KernelSet* kernel) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
#endif
#if defined(TFCOMPRESS_HAVE_AVX512)
  if (kernel == &kAvx512Kernel) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vpopcntdq");
  }
#endif
#if defined(TFCOMPRESS_HAVE_AVX2)
  if (kernel == &kAvx2Kernel) return __builtin_cpu_supports("avx2");
#endif
  (void)kernel;
  return true;  // scalar everywhere; NEON is part of every aarch64 CPU
}

std::vector<const KernelSet*> CompiledKernels() {
  return {
#if defined(TFCOMPRESS_HAVE_AVX512)
      &kAvx512Kernel,
#endif
#if defined(TFCOMPRESS_HAVE_AVX2)
      &kAvx2Kernel,
#endif
#if defined(TFCOMPRESS_HAVE_NEON)
      &kNeonKernel,
#endif
      &kScalarKernel,
  };
}

}  // namespace

std::vector<const KernelSet*> AvailableKernels() {
  std::vector<const KernelSet*> kernels;
  for (const KernelSet* kernel : CompiledKernels()) {
    if (CpuSupports(kernel)) kernels.push_back(kernel);
  }
  return kernels;
}

const KernelSet* FindKernel(const std::string& name) {
  for (const KernelSet* kernel : AvailableKernels()) {
    if (name == kernel->name) return kernel;
  }
  return nullptr;
}

const KernelSet* BestKernel() {
  static const KernelSet* best = [] {
    const char* forced = std::getenv("TFCOMPRESS_KERNEL");
    if (forced != nullptr && forced[0] != '\0') {
      if (const KernelSet* kernel = FindKernel(forced)) return kernel;
    }
    return AvailableKernels().front();
  }();
  return best;
}

void PaddedImageSize(const ConvGeometry& g, int* padded_h, int* padded_w) {
  const int64_t span_h = static_cast<int64_t>(g.kernel_h - 1) * g.dilation_h + 1;
  const int64_t span_w = static_cast<int64_t>(g.kernel_w - 1) * g.dilation_w + 1;
  const int64_t reach_h = static_cast<int64_t>(g.out_h - 1) * g.stride_h + span_h;  // rows the taps touch
  const int64_t reach_w = static_cast<int64_t>(g.out_w - 1) * g.stride_w + span_w;
  *padded_h = static_cast<int>(std::max<int64_t>(g.pad_top + g.in_h, reach_h));
  *padded_w = static_cast<int>(std::max<int64_t>(g.pad_left + g.in_w, reach_w));
}

namespace {

struct ConvJob {
  const KernelSet* kernel;
  const BinaryConvArgs* args;
};

void ConvJobRows(void* ctx, int begin, int end) {
  const ConvJob* job = static_cast<const ConvJob*>(ctx);
  job->kernel->conv_rows(*job->args, begin, end);
}

// Building the padded bit image, one task per padded row (n, y): padding rows and columns
// are zero bits (+1 values), image pixels are packed from floats or copied from int32 words.
struct ImageJob {
  const KernelSet* kernel;
  const ConvGeometry* g;
  const ConvBuffers* io;
  int padded_h, padded_w, words;
  uint64_t* bits;
};

// Packed int32 words to uint64 words: word j = int32 word 2j | int32 word 2j+1 << 32, the bits
// past `channels` cleared (a packed input's unused high bits are ignored), in nibble planes
// when `nibble_planes`.
void CopyPackedPixels(const int32_t* input, int pixels, int channels, bool nibble_planes, uint64_t* bits) {
  const int words32 = Words32(channels);
  const int words = Words64(channels);
  const uint64_t last_mask = channels % 64 == 0 ? ~uint64_t{0} : (uint64_t{1} << (channels % 64)) - 1;
  for (int p = 0; p < pixels; ++p) {
    const int32_t* in = input + static_cast<int64_t>(p) * words32;
    uint64_t* out = bits + static_cast<int64_t>(p) * words * (nibble_planes ? 2 : 1);
    for (int j = 0; j < words; ++j) {
      const uint64_t low = static_cast<uint32_t>(in[2 * j]);
      const uint64_t high = 2 * j + 1 < words32 ? static_cast<uint32_t>(in[2 * j + 1]) : 0;
      const uint64_t word = (low | high << 32) & (j == words - 1 ? last_mask : ~uint64_t{0});
      if (nibble_planes) {
        StoreNibblePlanes(word, out + 2 * j);
      } else {
        out[j] = word;
      }
    }
  }
}

void ImageJobRows(void* ctx, int begin, int end) {
  const ImageJob* job = static_cast<const ImageJob*>(ctx);
  const ConvGeometry& g = *job->g;
  const int64_t row_words = static_cast<int64_t>(job->padded_w) * job->words;
  for (int r = begin; r < end; ++r) {
    const int n = r / job->padded_h;
    const int iy = r % job->padded_h - g.pad_top;
    uint64_t* dst = job->bits + static_cast<int64_t>(r) * row_words;
    if (iy < 0 || iy >= g.in_h) {
      std::fill(dst, dst + row_words, 0);
      continue;
    }
    std::fill(dst, dst + static_cast<int64_t>(g.pad_left) * job->words, 0);
    std::fill(dst + static_cast<int64_t>(g.pad_left + g.in_w) * job->words, dst + row_words, 0);
    const int64_t pixel = (static_cast<int64_t>(n) * g.in_h + iy) * g.in_w;
    uint64_t* image = dst + static_cast<int64_t>(g.pad_left) * job->words;
    if (job->io->input != nullptr) {
      job->kernel->pack_activations(job->io->input + pixel * g.in_c, g.in_w, g.in_c, job->words, image);
    } else {
      CopyPackedPixels(job->io->packed_input + pixel * Words32(g.in_c), g.in_w, g.in_c, job->kernel->nibble_planes,
                       image);
    }
  }
}

}  // namespace

void RunBinaryConv(const KernelSet& kernel, const ConvGeometry& g, const ConvBuffers& io,
                   const AlignedWords& weights, const std::vector<int32_t>& tap_sums,
                   const float* multiplier, const float* bias, Activation activation, int threads,
                   AlignedWords* scratch) {
  BinaryConvArgs args;
  args.g = g;
  args.words = KernelWords(kernel, g.in_c);
  args.out_c_padded = RoundUp8(g.out_c);
  PaddedImageSize(g, &args.padded_h, &args.padded_w);
  scratch->resize(static_cast<size_t>(g.batch) * args.padded_h * args.padded_w * args.words);
  ImageJob image{&kernel, &g, &io, args.padded_h, args.padded_w, args.words, scratch->data()};
  ParallelFor(g.batch * args.padded_h, threads, ImageJobRows, &image);
  args.input_bits = scratch->data();
  args.weights = weights.data();
  args.tap_sums = tap_sums.data();
  args.multiplier = multiplier;
  args.bias = bias;
  args.activation = activation;
  args.output = io.output;
  args.packed_output = io.packed_output;
  ConvJob job{&kernel, &args};
  ParallelFor(g.batch * g.out_h, threads, ConvJobRows, &job);
}

}  // namespace tfcompress
