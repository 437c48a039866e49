// The loop over output pixels shared by every optimized kernel. Each instruction-set file
// includes this header and instantiates ConvRows with its micro-kernel, so the driver is
// compiled with that file's target flags.
//
// A micro-kernel provides
//   static void Accumulate(const uint64_t* const* tap_inputs, const int* tap_ids, int taps,
//                          int words, const uint64_t* weights, int out_c_padded, int32_t* popcounts);
// which sets popcounts[c] = sum_t sum_k popcount(tap_inputs[t][k] ^ weights[tap_ids[t]][k][c]),
// and `static constexpr bool kHasInterior`. When true, it also provides
//   static void Interior(const BinaryConvArgs& args, const uint64_t* first_tap, int ox_begin,
//                        int ox_end, const int64_t* tap_offsets, float* out);
// for a run of output pixels whose taps all lie inside the image (no padding): the taps
// of pixel ox are at first_tap + (ox - ox_begin) * stride_w * words + tap_offsets[t], and
// it writes the transformed outputs itself (out points at pixel ox_begin).
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

template <class Micro>
void ConvRows(const BinaryConvArgs& a, int row_begin, int row_end) {
  const ConvGeometry& g = a.g;
  const int taps = g.kernel_h * g.kernel_w;
  const int ocp = a.out_c_padded;
  std::vector<const uint64_t*> tap_inputs(taps);
  std::vector<int> tap_ids(taps), padded_ids(taps);
  std::vector<int32_t> popcounts(ocp), extra(ocp);
  std::vector<int64_t> tap_offsets(taps);
  for (int ky = 0; ky < g.kernel_h; ++ky) {
    for (int kx = 0; kx < g.kernel_w; ++kx) {
      tap_offsets[ky * g.kernel_w + kx] =
          (static_cast<int64_t>(ky) * g.dilation_h * g.in_w + static_cast<int64_t>(kx) * g.dilation_w) * a.words;
    }
  }
  // Output columns whose taps are all inside the image horizontally: [inner_begin, inner_end).
  int inner_begin = 0;
  while (inner_begin < g.out_w && inner_begin * g.stride_w - g.pad_left < 0) ++inner_begin;
  int inner_end = inner_begin;
  while (inner_end < g.out_w && inner_end * g.stride_w - g.pad_left + (g.kernel_w - 1) * g.dilation_w < g.in_w) {
    ++inner_end;
  }
  for (int row = row_begin; row < row_end; ++row) {
    const int n = row / g.out_h;
    const int oy = row % g.out_h;
    const uint64_t* image = a.input_bits + static_cast<int64_t>(n) * g.in_h * g.in_w * a.words;
    float* out_row = a.output + static_cast<int64_t>(row) * g.out_w * g.out_c;
    const int top = oy * g.stride_h - g.pad_top;
    const bool row_inside = top >= 0 && top + (g.kernel_h - 1) * g.dilation_h < g.in_h;
    for (int ox = 0; ox < g.out_w; ++ox) {
      if constexpr (Micro::kHasInterior) {
        if (row_inside && ox == inner_begin && inner_end > inner_begin) {
          const uint64_t* first = image + (static_cast<int64_t>(top) * g.in_w + ox * g.stride_w - g.pad_left) * a.words;
          Micro::Interior(a, first, inner_begin, inner_end, tap_offsets.data(),
                          out_row + static_cast<int64_t>(ox) * g.out_c);
          ox = inner_end - 1;
          continue;
        }
      }
      int valid = 0, padded = 0;
      for (int ky = 0; ky < g.kernel_h; ++ky) {
        const int iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
        for (int kx = 0; kx < g.kernel_w; ++kx) {
          const int ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
          const int tap = ky * g.kernel_w + kx;
          if (iy >= 0 && iy < g.in_h && ix >= 0 && ix < g.in_w) {
            tap_inputs[valid] = image + (static_cast<int64_t>(iy) * g.in_w + ix) * a.words;
            tap_ids[valid++] = tap;
          } else {
            padded_ids[padded++] = tap;
          }
        }
      }
      Micro::Accumulate(tap_inputs.data(), tap_ids.data(), valid, a.words, a.weights, ocp, popcounts.data());
      std::fill(extra.begin(), extra.end(), valid * g.in_c);
      if (g.pad_value != 0) {
        for (int p = 0; p < padded; ++p) {
          const int32_t* sums = a.tap_sums + static_cast<int64_t>(padded_ids[p]) * ocp;
          for (int c = 0; c < ocp; ++c) extra[c] += sums[c];
        }
      }
      float* out = out_row + static_cast<int64_t>(ox) * g.out_c;
      const int32_t* pc = popcounts.data();
      const int32_t* ex = extra.data();
      switch (a.activation) {
        case Activation::kNone:
          for (int c = 0; c < g.out_c; ++c)
            out[c] = a.multiplier[c] * static_cast<float>(ex[c] - 2 * pc[c]) + a.bias[c];
          break;
        case Activation::kRelu:
          for (int c = 0; c < g.out_c; ++c)
            out[c] = std::max(0.0f, a.multiplier[c] * static_cast<float>(ex[c] - 2 * pc[c]) + a.bias[c]);
          break;
        case Activation::kRelu6:
          for (int c = 0; c < g.out_c; ++c)
            out[c] = std::min(6.0f,
                              std::max(0.0f, a.multiplier[c] * static_cast<float>(ex[c] - 2 * pc[c]) + a.bias[c]));
          break;
      }
    }
  }
}

}  // namespace internal
}  // namespace tfcompress

#endif  // TFCOMPRESS_KERNELS_CONV_DRIVER_H_
