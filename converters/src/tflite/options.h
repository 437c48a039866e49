// Reading an op's flexbuffer custom options (a map of ints, floats, strings), verified
// before use so that a damaged buffer is an error, not an out-of-bounds read.
#ifndef TFCOMPRESS_TFLITE_OPTIONS_H_
#define TFCOMPRESS_TFLITE_OPTIONS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tfcompress {

class OpOptions {
 public:
  // Parses `buffer`; on failure returns false and sets `error`.
  bool Parse(const std::vector<uint8_t>& buffer, std::string* error);

  // Integer option `key` (ints, bools and integral floats accepted), else `fallback`.
  // Returns false with `error` set when it has another type.
  bool GetInt(const char* key, int64_t fallback, int64_t* value, std::string* error) const;
  bool GetString(const char* key, const std::string& fallback, std::string* value, std::string* error) const;
  bool Has(const char* key) const { return values_.count(key) != 0; }

 private:
  struct Value {
    enum Kind { kInt, kFloat, kString, kOther } kind = kOther;
    int64_t i = 0;
    double f = 0;
    std::string s;
  };
  std::map<std::string, Value> values_;
};

}  // namespace tfcompress

#endif  // TFCOMPRESS_TFLITE_OPTIONS_H_
