// Enums with their names, for every setting a user names in words (a loss, a backend, an
// optimiser): one table per enum gives both directions, and a refusal lists the names there are.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "util/check.h"

namespace sinkhorn {

/// The enum values of a setting with the name each is written as, in the order messages list them.
template <typename Enum>
using NameTable = std::vector<std::pair<Enum, const char*>>;

/// The name of `value` in `table` ("unknown" for a value the table lacks).
template <typename Enum>
std::string name_of(const NameTable<Enum>& table, Enum value) {
  for (const auto& [entry, name] : table) {
    if (entry == value) return name;
  }
  return "unknown";
}

/// The names of `table`, "a, b, c".
template <typename Enum>
std::string names_of(const NameTable<Enum>& table) {
  std::string names;
  for (const auto& entry : table) names += (names.empty() ? "" : ", ") + std::string(entry.second);
  return names;
}

/// The value named `name`; throws sinkhorn::Error naming `argument` and the names there are.
template <typename Enum>
Enum parse_name(const NameTable<Enum>& table, const std::string& name, const std::string& argument) {
  for (const auto& [entry, entry_name] : table) {
    if (name == entry_name) return entry;
  }
  SINKHORN_CHECK_ARG(false, argument, "must be one of " << names_of(table) << ", got '" << name << "'");
  return table.front().first;
}

}  // namespace sinkhorn
