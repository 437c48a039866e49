// libFuzzer target over the custom-options reader every op starts its Prepare with
// (tflite/options.cc): any bytes either parse into a map or give an error, never a read
// outside the buffer; then every accessor on the keys the ops read.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tflite/options.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* const kKeys[] = {"in_channels", "padding", "activation", "stride_height", "block_size",
                                      "n_centroids", "code_bits", "entries",  "gap_bits",      "dim0"};
  tfcompress::OpOptions options;
  std::string error;
  if (!options.Parse(std::vector<uint8_t>(data, data + size), &error)) return 0;
  for (const char* key : kKeys) {
    int64_t value = 0;
    std::string text;
    options.GetInt(key, -1, &value, &error);
    options.GetString(key, "", &text, &error);
    options.Has(key);
  }
  return 0;
}
