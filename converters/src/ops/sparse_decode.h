// Deep Compression decoding (Han et al. 2016): canonical Huffman streams of relative sparse
// positions and shared-weight indices back to a dense float32 kernel. Portable reference
// code: runs once per weight tensor at Prepare, so it favours clarity over speed.
//
// Format (written by tfcompress/pruning/deep_compression.py):
//   entries e = 0..E-1 carry (gap_e, index_e); position_e = position_{e-1} + gap_e + 1
//   (position_{-1} = -1) and out[position_e] = codebook[index_e]; every other element is 0.
//   Index 0 is the filler entry (codebook[0] = 0) that bridges a gap longer than
//   2^gap_bits - 1. Both streams are canonical Huffman codes given by one length per
//   symbol, bits most significant first.
//   Dense mode, gap_bits = 0: entries = the kernel's size, out[e] = codebook[index_e] (index 0,
//   a zero, coded like any other), and the gap stream is not read (it is absent).
#ifndef TFCOMPRESS_OPS_SPARSE_DECODE_H_
#define TFCOMPRESS_OPS_SPARSE_DECODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tfcompress {

// A canonical Huffman decoding table built from code lengths.
struct HuffmanTable {
  int max_length = 0;
  std::vector<int64_t> first;   // first code of each length
  std::vector<int64_t> count;   // codes of each length
  std::vector<int64_t> offset;  // index in `symbols` of the first code of each length
  std::vector<int> symbols;     // symbols in canonical order (length, symbol)
};

// Builds the table; false (with `error`) for lengths > 24 or an over-full code.
bool BuildHuffmanTable(const uint8_t* lengths, int alphabet, HuffmanTable* table, std::string* error);

// Decodes `count` symbols from `data` into `out`; false when the bits run out or hold no code.
bool DecodeHuffman(const uint8_t* data, size_t bytes, const HuffmanTable& table, int64_t count,
                   std::vector<int>* out, std::string* error);

struct SparseStreams {
  const uint8_t* gap_data = nullptr;
  size_t gap_bytes = 0;
  const uint8_t* gap_lengths = nullptr;
  int gap_bits = 0;  // 0: dense mode (no gap stream)
  const uint8_t* index_data = nullptr;
  size_t index_bytes = 0;
  const uint8_t* index_lengths = nullptr;
  int weight_bits = 0;
  const float* codebook = nullptr;  // [2^weight_bits], codebook[0] = 0
  int64_t entries = 0;
};

// Rebuilds the dense kernel of `size` elements into `out`; false (with `error`) on a
// malformed stream or a position past the end.
bool SparseDecode(const SparseStreams& streams, float* out, int64_t size, std::string* error);

}  // namespace tfcompress

#endif  // TFCOMPRESS_OPS_SPARSE_DECODE_H_
