#include "tflite/options.h"

#include <cmath>
#include <cstring>

#include "flatbuffers/flexbuffers.h"

namespace tfcompress {

bool OpOptions::Parse(const std::vector<uint8_t>& buffer, std::string* error) {
  values_.clear();
  if (buffer.empty()) return true;
  if (!flexbuffers::VerifyBuffer(buffer.data(), buffer.size())) {
    *error = "custom options are not a valid flexbuffer";
    return false;
  }
  const flexbuffers::Reference root = flexbuffers::GetRoot(buffer.data(), buffer.size());
  if (!root.IsMap()) {
    *error = "custom options are not a flexbuffer map";
    return false;
  }
  const flexbuffers::Map map = root.AsMap();
  const flexbuffers::TypedVector keys = map.Keys();
  const flexbuffers::Vector values = map.Values();
  const char* const begin = reinterpret_cast<const char*>(buffer.data());
  const char* const end = begin + buffer.size();
  for (size_t i = 0; i < keys.size(); ++i) {
    // flatbuffers 2.0.8's verifier does not check that a key ends inside the buffer.
    const char* key = keys[i].AsKey();
    if (key < begin || key >= end || std::memchr(key, 0, static_cast<size_t>(end - key)) == nullptr) {
      *error = "custom options hold a key that runs past the end of the buffer";
      return false;
    }
    const flexbuffers::Reference v = values[i];
    Value value;
    if (v.IsBool() || v.IsIntOrUint()) {
      value.kind = Value::kInt;
      value.i = v.AsInt64();
    } else if (v.IsFloat()) {
      value.kind = Value::kFloat;
      value.f = v.AsDouble();
    } else if (v.IsString()) {
      value.kind = Value::kString;
      value.s = v.AsString().str();
    }
    values_[key] = value;
  }
  return true;
}

bool OpOptions::GetInt(const char* key, int64_t fallback, int64_t* value, std::string* error) const {
  const auto it = values_.find(key);
  if (it == values_.end()) {
    *value = fallback;
    return true;
  }
  if (it->second.kind == Value::kInt) {
    *value = it->second.i;
    return true;
  }
  if (it->second.kind == Value::kFloat && std::isfinite(it->second.f) && std::floor(it->second.f) == it->second.f &&
      std::fabs(it->second.f) < 1e9) {
    *value = static_cast<int64_t>(it->second.f);
    return true;
  }
  *error = std::string("option '") + key + "' must be an integer";
  return false;
}

bool OpOptions::GetString(const char* key, const std::string& fallback, std::string* value,
                          std::string* error) const {
  const auto it = values_.find(key);
  if (it == values_.end()) {
    *value = fallback;
    return true;
  }
  if (it->second.kind != Value::kString) {
    *error = std::string("option '") + key + "' must be a string";
    return false;
  }
  *value = it->second.s;
  return true;
}

}  // namespace tfcompress
