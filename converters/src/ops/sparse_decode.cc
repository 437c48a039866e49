#include "ops/sparse_decode.h"

#include <algorithm>

namespace tfcompress {

constexpr int kMaxHuffmanLength = 24;

bool BuildHuffmanTable(const uint8_t* lengths, int alphabet, HuffmanTable* table, std::string* error) {
  int max_length = 0;
  for (int s = 0; s < alphabet; ++s) max_length = std::max(max_length, static_cast<int>(lengths[s]));
  if (max_length > kMaxHuffmanLength) {
    *error = "Huffman code length " + std::to_string(max_length) + " exceeds " + std::to_string(kMaxHuffmanLength);
    return false;
  }
  table->max_length = max_length;
  table->count.assign(max_length + 1, 0);
  for (int s = 0; s < alphabet; ++s) table->count[lengths[s]]++;
  table->count[0] = 0;
  table->first.assign(max_length + 1, 0);
  table->offset.assign(max_length + 1, 0);
  int64_t code = 0, index = 0;
  for (int length = 1; length <= max_length; ++length) {
    code = (code + table->count[length - 1]) << 1;
    if (length == 1) code = 0;
    table->first[length] = code;
    table->offset[length] = index;
    index += table->count[length];
    if (code + table->count[length] > (int64_t{1} << length)) {
      *error = "Huffman code lengths describe an over-full code";
      return false;
    }
  }
  table->symbols.clear();
  for (int length = 1; length <= max_length; ++length) {
    for (int s = 0; s < alphabet; ++s) {
      if (lengths[s] == length) table->symbols.push_back(s);
    }
  }
  return true;
}

bool DecodeHuffman(const uint8_t* data, size_t bytes, const HuffmanTable& table, int64_t count,
                   std::vector<int>* out, std::string* error) {
  out->resize(static_cast<size_t>(count));
  const uint64_t total_bits = static_cast<uint64_t>(bytes) * 8;
  uint64_t position = 0;
  for (int64_t i = 0; i < count; ++i) {
    int64_t code = 0;
    bool found = false;
    for (int length = 1; length <= table.max_length; ++length) {
      if (position >= total_bits) {
        *error = "Huffman stream ends in the middle of a code";
        return false;
      }
      code = (code << 1) | ((data[position >> 3] >> (7 - (position & 7))) & 1);
      ++position;
      const int64_t delta = code - table.first[length];
      if (delta >= 0 && delta < table.count[length]) {
        (*out)[static_cast<size_t>(i)] = table.symbols[static_cast<size_t>(table.offset[length] + delta)];
        found = true;
        break;
      }
    }
    if (!found) {
      *error = "Huffman stream holds a code that is not in its table";
      return false;
    }
  }
  return true;
}

bool SparseDecode(const SparseStreams& s, float* out, int64_t size, std::string* error) {
  if (s.gap_bits < 0 || s.gap_bits > 8 || s.weight_bits < 1 || s.weight_bits > 8) {
    *error = "gap_bits must be in [0, 8] (0: dense mode) and weight_bits in [1, 8]";
    return false;
  }
  const bool dense = s.gap_bits == 0;
  if (dense && s.entries != size) {
    *error = "dense mode (gap_bits 0) needs one entry per element: " + std::to_string(s.entries) + " entries for a " +
             std::to_string(size) + "-element kernel";
    return false;
  }
  HuffmanTable gaps_table, index_table;
  std::vector<int> gaps, indices;
  if (!BuildHuffmanTable(s.index_lengths, 1 << s.weight_bits, &index_table, error) ||
      !DecodeHuffman(s.index_data, s.index_bytes, index_table, s.entries, &indices, error)) {
    return false;
  }
  if (dense) {
    for (int64_t e = 0; e < size; ++e) out[e] = s.codebook[indices[static_cast<size_t>(e)]];
    return true;
  }
  if (!BuildHuffmanTable(s.gap_lengths, 1 << s.gap_bits, &gaps_table, error) ||
      !DecodeHuffman(s.gap_data, s.gap_bytes, gaps_table, s.entries, &gaps, error)) {
    return false;
  }
  std::fill(out, out + size, 0.0f);
  int64_t position = -1;
  for (int64_t e = 0; e < s.entries; ++e) {
    position += gaps[static_cast<size_t>(e)] + 1;
    if (position >= size) {
      *error = "sparse positions run past the end of the " + std::to_string(size) + "-element kernel";
      return false;
    }
    out[position] = s.codebook[indices[static_cast<size_t>(e)]];
  }
  return true;
}

}  // namespace tfcompress
