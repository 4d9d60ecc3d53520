// Small string helpers shared by the readers and the run folder.
#pragma once

#include <string>
#include <string_view>

namespace sinkhorn {

/// True when `text` begins with `prefix` (byte for byte).
inline bool starts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

/// True when `text` ends with `suffix` (byte for byte).
inline bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// `text` for quoting in a message: printable ASCII as is, any other byte (a tab, a NUL, a byte of
/// UTF-8, a byte-order mark) as \xHH, so that an invisible character is seen. At most `max_shown`
/// bytes of `text` are shown, then "...".
inline std::string visible_bytes(std::string_view text, size_t max_shown = std::string_view::npos) {
  constexpr char kHex[] = "0123456789ABCDEF";
  std::string shown;
  for (size_t k = 0; k < text.size() && k < max_shown; ++k) {
    const auto byte = static_cast<unsigned char>(text[k]);
    if (byte >= 0x20 && byte < 0x7f) {
      shown += static_cast<char>(byte);
    } else {
      shown += "\\x";
      shown += kHex[byte >> 4];
      shown += kHex[byte & 15];
    }
  }
  if (text.size() > max_shown) shown += "...";
  return shown;
}

}  // namespace sinkhorn
