// A plain C entry to the Deep Compression decoder for tests through ctypes
// (tfcompress/pruning/native.py), outside any TFLite interpreter.
#include <cstdio>
#include <string>

#include "ops/sparse_decode.h"

#define TFC_SPARSE_EXPORT extern "C" __attribute__((visibility("default")))

// Decodes into `out` (`size` floats). Returns 0, or 1 with a message in `error`.
TFC_SPARSE_EXPORT int tfc_sparse_decode(const uint8_t* gap_data, long long gap_bytes, const uint8_t* gap_lengths,
                                        int gap_bits, const uint8_t* index_data, long long index_bytes,
                                        const uint8_t* index_lengths, int weight_bits, const float* codebook,
                                        long long entries, float* out, long long size, char* error, int error_size) {
  tfcompress::SparseStreams streams;
  streams.gap_data = gap_data;
  streams.gap_bytes = static_cast<size_t>(gap_bytes);
  streams.gap_lengths = gap_lengths;
  streams.gap_bits = gap_bits;
  streams.index_data = index_data;
  streams.index_bytes = static_cast<size_t>(index_bytes);
  streams.index_lengths = index_lengths;
  streams.weight_bits = weight_bits;
  streams.codebook = codebook;
  streams.entries = entries;
  std::string message;
  if (tfcompress::SparseDecode(streams, out, size, &message)) return 0;
  if (error != nullptr && error_size > 0) std::snprintf(error, static_cast<size_t>(error_size), "%s", message.c_str());
  return 1;
}
