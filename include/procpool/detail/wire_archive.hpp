// cereal archives in cereal's binary format, over procpool's byte buffers.
//
// Why not cereal::BinaryOutputArchive over a std::ostream: these write
// straight into shared memory without an iostream per task, and the input
// side checks every length prefix against the bytes that are left, so a
// corrupted frame fails with SerializationError instead of a huge allocation.
#pragma once

#include <cereal/cereal.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "procpool/detail/buffer.hpp"

namespace procpool::detail {

class WireOutputArchive : public cereal::OutputArchive<WireOutputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit WireOutputArchive(OutputBuffer& out)
      : cereal::OutputArchive<WireOutputArchive, cereal::AllowEmptyClassElision>(this), out_(out) {}
  void saveBinary(const void* data, std::size_t size) { out_.write(data, size); }

 private:
  OutputBuffer& out_;
};

class WireInputArchive : public cereal::InputArchive<WireInputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit WireInputArchive(InputBuffer& in)
      : cereal::InputArchive<WireInputArchive, cereal::AllowEmptyClassElision>(this), in_(in) {}
  void loadBinary(void* data, std::size_t size) { in_.read(data, size); }
  // A container of n elements needs at least n bytes still to come (elements
  // of empty types are the one exception, and are rejected past that bound).
  void check_element_count(std::uint64_t n) const {
    if (n > in_.remaining()) in_.underflow(n);
  }
  // The next `n` bytes, in place (bounds-checked), for a reader that copies them itself.
  const char* skip(std::size_t n) { return in_.skip(n); }

 private:
  InputBuffer& in_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const T& t) {
  ar.saveBinary(std::addressof(t), sizeof(t));
}
template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, T& t) {
  ar.loadBinary(std::addressof(t), sizeof(t));
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const cereal::SizeTag<T>& t) {
  ar(t.size);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  ar.check_element_count(static_cast<std::uint64_t>(t.size));
}
// A vector of bytes (char, signed or unsigned char: std::uint8_t too) is built straight
// from the payload: one copy, where cereal's resize-then-read writes every
// byte twice (zeros, then the data), which for a large payload is a third of
// the cost. Same bytes on the wire as cereal's.
template <class T, class A>
  requires(std::is_same_v<T, char> || std::is_same_v<T, signed char> || std::is_same_v<T, unsigned char>)
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, std::vector<T, A>& vector) {
  cereal::size_type count = 0;
  ar(cereal::make_size_tag(count));  // checked against the bytes left
  const char* bytes = ar.skip(static_cast<std::size_t>(count));
  vector.assign(reinterpret_cast<const T*>(bytes), reinterpret_cast<const T*>(bytes) + count);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const cereal::BinaryData<T>& bd) {
  ar.saveBinary(bd.data, static_cast<std::size_t>(bd.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

}  // namespace procpool::detail

CEREAL_REGISTER_ARCHIVE(procpool::detail::WireOutputArchive)
CEREAL_REGISTER_ARCHIVE(procpool::detail::WireInputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(procpool::detail::WireInputArchive, procpool::detail::WireOutputArchive)
