// The loop over output pixels shared by every optimized kernel. Each instruction-set file
// includes this header and instantiates ConvRows with its micro-kernel, so the driver is
// compiled with that file's target flags.
//
// The input is the padded bit image (binary_conv.h), so every tap of every output pixel
// is in range: word k of tap t of pixel ox of an output row is at
// first + ox * step + offsets[t * words + k] (step = stride_w * words), and the weights of
// that step q = t * words + k are weights[q][c] (contiguous in q). Zero padding only adds a
// per-channel correction for border pixels, which the driver computes (`corrections`: one
// pointer per pixel to its [out_c_padded] correction, null for a pixel inside the image; or
// null for a run without border pixels). Border and inner pixels share the same runs, so a
// register-blocked kernel keeps its full pixel blocks on rows that touch the border.
//
// A micro-kernel provides `static constexpr bool kHasInterior` and either
//   (kHasInterior) static void Interior(const BinaryConvArgs& args, const uint64_t* first,
//                      int count, int64_t step, const int64_t* offsets,
//                      const int32_t* const* corrections, int64_t out_pixel);
//       which computes `count` consecutive output pixels and writes them, transformed (float
//       or packed), at output pixel index out_pixel, out_pixel + 1, ...; or
//   (!kHasInterior) static void Accumulate(const uint64_t* const* tap_inputs, const int* tap_ids,
//                      int taps, int words, const uint64_t* weights, int out_c_padded, int32_t* popcounts);
//       which sets popcounts[c] = sum_t sum_k popcount(tap_inputs[t][k] ^ weights[tap_ids[t]][k][c]),
//       and the driver applies the output transform.
#ifndef TFCOMPRESS_KERNELS_CONV_DRIVER_H_
#define TFCOMPRESS_KERNELS_CONV_DRIVER_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/binary_conv.h"

namespace tfcompress {
namespace internal {

// Bit-packing of float activations: bit = !(x >= 0), so sign(0) = +1 (and NaN -> -1, as
// TensorFlow's where(x >= 0, 1, -1)).
inline void PackActivationsPortable(const float* input, int64_t pixels, int channels, int words, uint64_t* bits) {
  for (int64_t p = 0; p < pixels; ++p) {
    const float* x = input + p * channels;
    uint64_t* out = bits + p * words;
    for (int w = 0; w < words; ++w) {
      const int begin = w * 64;
      const int end = std::min(channels, begin + 64);
      uint64_t word = 0;
      for (int c = begin; c < end; ++c) word |= static_cast<uint64_t>(!(x[c] >= 0.0f)) << (c - begin);
      out[w] = word;
    }
  }
}

// The signs of `channels` floats as int32 words (the op's packed activation layout).
inline void PackSignsWords32(const float* y, int channels, int32_t* out) {
  for (int w = 0; w * 32 < channels; ++w) {
    const int end = std::min(channels, w * 32 + 32);
    uint32_t word = 0;
    for (int c = w * 32; c < end; ++c) word |= static_cast<uint32_t>(!(y[c] >= 0.0f)) << (c - w * 32);
    out[w] = static_cast<int32_t>(word);
  }
}

// The per-pixel state of kPixels consecutive output pixels in a register-blocked micro-kernel:
// each pixel's zero-padding correction row (null inside the image) and, for a packed output,
// the sign bits of its current group of 64 channels.
template <int kPixels>
struct PixelBlock {
  const int32_t* corr[kPixels];
  uint64_t bits[kPixels];

  explicit PixelBlock(const int32_t* const* corrections) {
    for (int i = 0; i < kPixels; ++i) {
      corr[i] = corrections != nullptr ? corrections[i] : nullptr;
      bits[i] = 0;
    }
  }

  // Stores the sign bits of channels [64 * group, 64 * group + 64) of pixels out_pixel.. and clears them.
  void StoreBits(const BinaryConvArgs& a, int64_t out_pixel, int group) {
    const int words32 = Words32(a.g.out_c);
    for (int i = 0; i < kPixels; ++i) {
      int32_t* out = a.packed_output + (out_pixel + i) * words32 + 2 * group;
      out[0] = static_cast<int32_t>(static_cast<uint32_t>(bits[i]));
      if (2 * group + 1 < words32) out[1] = static_cast<int32_t>(static_cast<uint32_t>(bits[i] >> 32));
      bits[i] = 0;
    }
  }
};

// Micro::Pixels<kPixels> for a micro-kernel whose Micro::Block<kPixels>(a, first, step, offsets,
// corr, out_pixel, c0, bits) computes and stores kPixels pixels x Micro::kBlockChannels channels
// from c0 (kBlockChannels divides 8, so the blocks tile out_c_padded and every 64-channel group).
template <class Micro, int kPixels>
void ChannelBlocks(const BinaryConvArgs& a, const uint64_t* first, int64_t step, const int64_t* offsets,
                   const int32_t* const* corrections, int64_t out_pixel) {
  constexpr int kChannels = Micro::kBlockChannels;
  static_assert(8 % kChannels == 0, "channel blocks must tile groups of 8 channels");
  const int ocp = a.out_c_padded;
  PixelBlock<kPixels> block(corrections);
  const bool packed = a.output == nullptr;
  for (int c0 = 0; c0 < ocp; c0 += kChannels) {
    Micro::template Block<kPixels>(a, first, step, offsets, block.corr, out_pixel, c0, block.bits);
    if (packed && (c0 + kChannels) % 64 == 0) block.StoreBits(a, out_pixel, c0 / 64);
  }
  if (packed && ocp % 64 != 0) block.StoreBits(a, out_pixel, ocp / 64);
}

// Micro::Interior for a micro-kernel with Micro::Pixels<k>(a, first, step, offsets, corrections,
// out_pixel) for k = kMaxPixels, 2, 1: runs of kMaxPixels pixels, then 2, then 1.
template <class Micro, int kMaxPixels>
void InteriorInBlocks(const BinaryConvArgs& a, const uint64_t* first, int count, int64_t step, const int64_t* offsets,
                      const int32_t* const* corrections, int64_t out_pixel) {
  auto corr = [&](int at) { return corrections != nullptr ? corrections + at : nullptr; };
  int i = 0;
  for (; i + kMaxPixels <= count; i += kMaxPixels) {
    Micro::template Pixels<kMaxPixels>(a, first + i * step, step, offsets, corr(i), out_pixel + i);
  }
  for (; i + 2 <= count; i += 2) Micro::template Pixels<2>(a, first + i * step, step, offsets, corr(i), out_pixel + i);
  for (; i < count; ++i) Micro::template Pixels<1>(a, first + i * step, step, offsets, corr(i), out_pixel + i);
}

// Pixels and Interior of a micro-kernel made of channel blocks (Micro::Block<kPixels> and
// Micro::kBlockChannels, see ChannelBlocks) in runs of up to kMaxPixels pixels:
// `struct MyMicro : BlockedMicro<MyMicro, 4> { ... }`.
template <class Micro, int kMaxPixels>
struct BlockedMicro {
  static constexpr bool kHasInterior = true;

  template <int kPixels>
  static void Pixels(const BinaryConvArgs& a, const uint64_t* first, int64_t step, const int64_t* offsets,
                     const int32_t* const* corrections, int64_t out_pixel) {
    ChannelBlocks<Micro, kPixels>(a, first, step, offsets, corrections, out_pixel);
  }

  static void Interior(const BinaryConvArgs& a, const uint64_t* first, int count, int64_t step,
                       const int64_t* offsets, const int32_t* const* corrections, int64_t out_pixel) {
    InteriorInBlocks<Micro, kMaxPixels>(a, first, count, step, offsets, corrections, out_pixel);
  }
};

// y = act(multiplier * (taps * in_c - 2 * popcount - correction) + bias) for one pixel, stored
// as floats or as packed signs (through `scratch`, out_c floats).
inline void TransformPixel(const BinaryConvArgs& a, const int32_t* popcounts, const int32_t* correction,
                           int64_t pixel, float* scratch) {
  const ConvGeometry& g = a.g;
  const int base = g.kernel_h * g.kernel_w * g.in_c;
  float* y = a.output != nullptr ? a.output + pixel * g.out_c : scratch;
  for (int c = 0; c < g.out_c; ++c) {
    const int acc = base - 2 * popcounts[c] - (correction != nullptr ? correction[c] : 0);
    float v = a.multiplier[c] * static_cast<float>(acc) + a.bias[c];
    if (a.activation != Activation::kNone) v = std::max(0.0f, v);
    if (a.activation == Activation::kRelu6) v = std::min(6.0f, v);
    y[c] = v;
  }
  if (a.output == nullptr) PackSignsWords32(y, g.out_c, a.packed_output + pixel * Words32(g.out_c));
}

// Per-thread buffers, grown on demand and kept (no allocation per invoke once warm).
struct RowWorkspace {
  std::vector<int64_t> tap_offsets;  // [taps]: first word of each tap
  std::vector<int64_t> offsets;      // [taps * words]: every word of the receptive field
  std::vector<const uint64_t*> tap_inputs;
  std::vector<int> tap_ids;
  std::vector<int32_t> popcounts, corrections;  // corrections: [kBorderChunk][out_c_padded]
  std::vector<const int32_t*> correction_rows;   // [kBorderChunk]
  std::vector<float> outputs;
};

// Rows with border pixels run in chunks of this many pixels (bounds `corrections`; a multiple
// of the kernels' pixel blocks).
constexpr int kBorderChunk = 16;

// corr[c] = sum of tap_sums[t][c] over the taps of output pixel (oy, ox) that fall in the
// padding (zero padding: those taps must contribute 0, not the +1 bits' sum).
inline void BorderCorrection(const BinaryConvArgs& a, int oy, int ox, int32_t* corr) {
  const ConvGeometry& g = a.g;
  const int ocp = a.out_c_padded;
  std::fill(corr, corr + ocp, 0);
  for (int ky = 0; ky < g.kernel_h; ++ky) {
    const int iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
    for (int kx = 0; kx < g.kernel_w; ++kx) {
      const int ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
      if (iy >= 0 && iy < g.in_h && ix >= 0 && ix < g.in_w) continue;
      const int32_t* sums = a.tap_sums + static_cast<int64_t>(ky * g.kernel_w + kx) * ocp;
      for (int c = 0; c < ocp; ++c) corr[c] += sums[c];
    }
  }
}

template <class Micro>
void RunPixels(const BinaryConvArgs& a, RowWorkspace& ws, const uint64_t* first, int count, int64_t step,
               const int32_t* const* corrections, int64_t out_pixel) {
  if constexpr (Micro::kHasInterior) {
    Micro::Interior(a, first, count, step, ws.offsets.data(), corrections, out_pixel);
  } else {
    const int taps = static_cast<int>(ws.tap_offsets.size());
    const int ocp = a.out_c_padded;
    for (int i = 0; i < count; ++i) {
      const uint64_t* p = first + i * step;
      for (int t = 0; t < taps; ++t) ws.tap_inputs[t] = p + ws.tap_offsets[t];
      Micro::Accumulate(ws.tap_inputs.data(), ws.tap_ids.data(), taps, a.words, a.weights, ocp, ws.popcounts.data());
      TransformPixel(a, ws.popcounts.data(), corrections != nullptr ? corrections[i] : nullptr, out_pixel + i,
                     ws.outputs.data());
    }
  }
}

template <class Micro>
void ConvRows(const BinaryConvArgs& a, int row_begin, int row_end) {
  const ConvGeometry& g = a.g;
  const int taps = g.kernel_h * g.kernel_w;
  const int ocp = a.out_c_padded;
  thread_local RowWorkspace ws;
  ws.tap_offsets.resize(taps);
  ws.offsets.resize(static_cast<size_t>(taps) * a.words);
  ws.tap_inputs.resize(taps);
  ws.tap_ids.resize(taps);
  ws.popcounts.resize(ocp);
  ws.corrections.resize(static_cast<size_t>(kBorderChunk) * ocp);
  ws.correction_rows.resize(kBorderChunk);
  ws.outputs.resize(ocp);
  for (int ky = 0; ky < g.kernel_h; ++ky) {
    for (int kx = 0; kx < g.kernel_w; ++kx) {
      const int t = ky * g.kernel_w + kx;
      ws.tap_offsets[t] =
          (static_cast<int64_t>(ky) * g.dilation_h * a.padded_w + static_cast<int64_t>(kx) * g.dilation_w) * a.words;
      ws.tap_ids[t] = t;
      for (int k = 0; k < a.words; ++k) ws.offsets[static_cast<size_t>(t) * a.words + k] = ws.tap_offsets[t] + k;
    }
  }
  // Output columns whose taps are all inside the image horizontally: [inner_begin, inner_end).
  int inner_begin = 0;
  while (inner_begin < g.out_w && inner_begin * g.stride_w - g.pad_left < 0) ++inner_begin;
  int inner_end = inner_begin;
  while (inner_end < g.out_w && inner_end * g.stride_w - g.pad_left + (g.kernel_w - 1) * g.dilation_w < g.in_w) {
    ++inner_end;
  }
  const bool zero_padding = g.pad_value == 0;
  const int64_t step = static_cast<int64_t>(g.stride_w) * a.words;
  for (int row = row_begin; row < row_end; ++row) {
    const int n = row / g.out_h;
    const int oy = row % g.out_h;
    const uint64_t* first =
        a.input_bits + ((static_cast<int64_t>(n) * a.padded_h + static_cast<int64_t>(oy) * g.stride_h) * a.padded_w) *
                           a.words;
    const int64_t out_pixel = static_cast<int64_t>(row) * g.out_w;
    const int top = oy * g.stride_h - g.pad_top;
    const bool row_inside = top >= 0 && top + (g.kernel_h - 1) * g.dilation_h < g.in_h;
    // One-padding: the padded bits are exactly the +1 values, no border case.
    if (!zero_padding || (row_inside && inner_begin == 0 && inner_end == g.out_w)) {
      RunPixels<Micro>(a, ws, first, g.out_w, step, nullptr, out_pixel);
      continue;
    }
    for (int ox = 0; ox < g.out_w; ox += kBorderChunk) {
      const int count = std::min(kBorderChunk, g.out_w - ox);
      for (int i = 0; i < count; ++i) {
        const bool inside = row_inside && ox + i >= inner_begin && ox + i < inner_end;
        int32_t* corr = ws.corrections.data() + static_cast<int64_t>(i) * ocp;
        if (!inside) BorderCorrection(a, oy, ox + i, corr);
        ws.correction_rows[i] = inside ? nullptr : corr;
      }
      RunPixels<Micro>(a, ws, first + ox * step, count, step, ws.correction_rows.data(), out_pixel + ox);
    }
  }
}

}  // namespace internal
}  // namespace tfcompress

#endif  // TFCOMPRESS_KERNELS_CONV_DRIVER_H_
