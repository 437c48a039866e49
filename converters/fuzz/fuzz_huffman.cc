// libFuzzer target over the Deep Compression decoder (ops/sparse_decode.cc) on its own: fuzzed
// code lengths, Huffman streams, modes and sizes, straight into SparseDecode, without the
// op's checks in front of it (the op-level target, fuzz_op TfcSparseDecode, covers those).
//
// Input: u8 gap_bits (mod 9), u8 weight_bits (1 + mod 8), u24 size, u24 entries (each mod 2^20),
//        2^gap_bits gap code lengths, 2^weight_bits index code lengths (each mod 32),
//        u16 gap stream bytes, the gap stream, then the index stream (the rest).
// Checked beyond the sanitizers: a decoded kernel holds only codebook values.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "ops/sparse_decode.h"

namespace {

using tfcompress::FuzzInput;

std::vector<uint8_t> Lengths(FuzzInput* in, int count) {
  std::vector<uint8_t> lengths(static_cast<size_t>(count));
  for (uint8_t& length : lengths) length = static_cast<uint8_t>(in->Uint(1) % 32);
  return lengths;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  tfcompress::SparseStreams s;
  s.gap_bits = static_cast<int>(in.Uint(1) % 9);
  s.weight_bits = 1 + static_cast<int>(in.Uint(1) % 8);
  const int64_t elements = static_cast<int64_t>(in.Uint(3) % (1u << 20));
  s.entries = static_cast<int64_t>(in.Uint(3) % (1u << 20));
  const std::vector<uint8_t> gap_lengths = Lengths(&in, 1 << s.gap_bits);
  const std::vector<uint8_t> index_lengths = Lengths(&in, 1 << s.weight_bits);
  const std::vector<uint8_t> gaps = in.Bytes(in.Uint(2));
  const std::vector<uint8_t> indices = in.Bytes(size);
  std::vector<float> codebook(size_t{1} << s.weight_bits);
  for (size_t i = 0; i < codebook.size(); ++i) codebook[i] = static_cast<float>(i) + 0.5f;
  codebook[0] = 0.0f;
  s.gap_lengths = gap_lengths.data();
  s.gap_data = gaps.data();
  s.gap_bytes = gaps.size();
  s.index_lengths = index_lengths.data();
  s.index_data = indices.data();
  s.index_bytes = indices.size();
  s.codebook = codebook.data();
  std::vector<float> out(static_cast<size_t>(elements) + 1, -1.0f);
  std::string error;
  if (!tfcompress::SparseDecode(s, out.data(), elements, &error)) return 0;
  for (int64_t e = 0; e < elements; ++e) {
    const float v = out[static_cast<size_t>(e)];
    if (v < 0.0f || v > static_cast<float>(codebook.size())) {
      std::fprintf(stderr, "fuzz_huffman: element %lld is %g, not a codebook value\n", static_cast<long long>(e), v);
      std::abort();
    }
  }
  return 0;
}
