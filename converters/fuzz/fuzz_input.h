// Reading a fuzzer's input as little-endian fields; past the end every read gives zeros, so
// any input decodes into some case.
#ifndef TFCOMPRESS_FUZZ_FUZZ_INPUT_H_
#define TFCOMPRESS_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tfcompress {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  // An unsigned little-endian integer of `bytes` bytes (at most 8).
  uint64_t Uint(int bytes) {
    uint64_t value = 0;
    for (int i = 0; i < bytes; ++i) {
      value |= static_cast<uint64_t>(offset_ < size_ ? data_[offset_++] : 0) << (8 * i);
    }
    return value;
  }

  // The next `n` bytes, fewer when the input runs out.
  std::vector<uint8_t> Bytes(size_t n) {
    const size_t take = n < size_ - offset_ ? n : size_ - offset_;
    std::vector<uint8_t> out(data_ + offset_, data_ + offset_ + take);
    offset_ += take;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
};

}  // namespace tfcompress

#endif  // TFCOMPRESS_FUZZ_FUZZ_INPUT_H_
