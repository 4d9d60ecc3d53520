#include "io/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <numeric>
#include <optional>
#include <set>

#include "util/check.h"

namespace sinkhorn::io {
namespace {

// Little-endian fields of the zip format (APPNOTE.TXT 4.3), read from a range the caller checked.
uint64_t little_endian(std::string_view bytes, uint64_t at, int size) {
  uint64_t value = 0;
  for (int k = size - 1; k >= 0; --k) value = (value << 8) | static_cast<uint8_t>(bytes[at + static_cast<uint64_t>(k)]);
  return value;
}

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEndOfDirectory = 0x06054b50;
constexpr uint32_t kZip64EndOfDirectory = 0x06064b50, kZip64Locator = 0x07064b50;
constexpr uint64_t kLocalHeaderSize = 30, kCentralHeaderSize = 46, kEndOfDirectorySize = 22;
constexpr uint64_t kZip64LocatorSize = 20, kZip64RecordSize = 56;
// Deflate's largest expansion: a 258-byte match costs at least 2 bits.
constexpr uint64_t kDeflateMaxRatio = 1032;

class ZipParser {
 public:
  ZipParser(std::string_view bytes, const std::string& file, const std::string& argument)
      : bytes_(bytes), file_(file), argument_(argument) {}

  std::vector<ZipEntry> entries() {
    // LibTorch writes no archive comment: the record is the file's last 22 bytes. A reader that
    // searched back for the signature could be shown one directory while LibTorch reads another.
    if (bytes_.size() < kEndOfDirectorySize) {
      fail("not a checkpoint: too short to be a zip archive (" + std::to_string(bytes_.size()) + " bytes)");
    }
    const uint64_t end = bytes_.size() - kEndOfDirectorySize;
    if (u32(end) != kEndOfDirectory) {
      fail("not a checkpoint: no zip end-of-central-directory record at its end (truncated, or another kind of file)");
    }
    check(u16(end + 20) == 0, "its zip end record announces a comment (LibTorch writes none)");
    check(u16(end + 4) == 0 && u16(end + 6) == 0 && u16(end + 8) == u16(end + 10),
          "its zip end record describes a multi-disk archive");
    uint64_t count = u16(end + 10), directory_size = u32(end + 12), directory_offset = u32(end + 16);
    uint64_t directory_end = end;  // where the central directory must stop
    if (end >= kZip64LocatorSize && u32(end - kZip64LocatorSize) == kZip64Locator) {
      const uint64_t locator = end - kZip64LocatorSize;
      const uint64_t record = u64(locator + 8);
      check(record <= locator && locator - record >= kZip64RecordSize,
            "its zip64 end-of-central-directory record does not lie before its locator");
      check(u32(record) == kZip64EndOfDirectory && u64(record + 4) >= kZip64RecordSize - 12 &&
                u64(record + 4) == locator - record - 12,
            "its zip64 end-of-central-directory record is damaged");
      check(u64(record + 24) == u64(record + 32), "its zip64 end record describes a multi-disk archive");
      count = u64(record + 32);
      directory_size = u64(record + 40);
      directory_offset = u64(record + 48);
      directory_end = record;
    }
    need(directory_offset, directory_size, "the central directory");
    check(directory_offset + directory_size == directory_end,
          "its central directory does not end where its end record begins");
    check(count <= directory_size / kCentralHeaderSize, "its central directory counts more entries than it holds");
    std::vector<ZipEntry> entries;
    entries.reserve(count);
    std::set<std::string> names;
    uint64_t at = directory_offset;
    uint64_t inflated = 0;
    for (uint64_t k = 0; k < count; ++k) {
      entries.push_back(central_entry(at, directory_end));
      ZipEntry& entry = entries.back();
      check(names.insert(entry.name).second, "two entries are named '" + entry.name + "'");
      local_header(entry);
      if (entry.method == 8) {
        check(entry.uncompressed_size <= kMaxInflatedEntry &&
                  entry.uncompressed_size <= kDeflateMaxRatio * (entry.compressed_size + 1),
              "entry '" + entry.name + "' claims to inflate to " + std::to_string(entry.uncompressed_size) +
                  " bytes (more than deflate or a LibTorch archive allows)");
        inflated += entry.uncompressed_size;
        check(inflated <= kMaxInflatedTotal, "its deflated entries claim more than " +
                                                 std::to_string(kMaxInflatedTotal) + " bytes in all");
      }
    }
    check(at == directory_end, "its central directory holds more than its entries");
    check_no_overlaps(entries, directory_offset);
    return entries;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(argument_, "'" + file_ + "' is " + problem);
  }

 private:
  uint64_t u16(uint64_t at) const { return little_endian(bytes_, at, 2); }
  uint64_t u32(uint64_t at) const { return little_endian(bytes_, at, 4); }
  uint64_t u64(uint64_t at) const {
    need(at, 8, "a zip field");
    return little_endian(bytes_, at, 8);
  }

  void check(bool condition, const std::string& problem) const {
    if (!condition) fail("corrupt or not a checkpoint: " + problem);
  }
  // [offset, offset + length) must lie in the file (written to avoid overflow).
  void need(uint64_t offset, uint64_t length, const std::string& what) const {
    check(offset <= bytes_.size() && length <= bytes_.size() - offset, what + " lies past the end of the file");
  }

  ZipEntry central_entry(uint64_t& at, uint64_t directory_end) const {
    need(at, kCentralHeaderSize, "a central-directory record");
    check(at + kCentralHeaderSize <= directory_end && u32(at) == kCentralHeader,
          "a central-directory record is damaged");
    ZipEntry entry;
    const uint64_t flags = u16(at + 8), name_length = u16(at + 28), extra_length = u16(at + 30),
                   comment_length = u16(at + 32);
    entry.method = static_cast<uint16_t>(u16(at + 10));
    entry.crc32 = static_cast<uint32_t>(u32(at + 16));
    entry.compressed_size = u32(at + 20);
    entry.uncompressed_size = u32(at + 24);
    entry.local_header_offset = u32(at + 42);
    entry.central_header_offset = at;
    const uint64_t variable = name_length + extra_length + comment_length;
    check(at + kCentralHeaderSize + variable <= directory_end, "a central-directory record is damaged");
    entry.name.assign(bytes_.data() + at + kCentralHeaderSize, name_length);
    // Zip64 extra field (id 1): the 64-bit values of the fields saturated at 0xffffffff, in order.
    for (uint64_t extra = at + kCentralHeaderSize + name_length, extra_end = extra + extra_length;
         extra + 4 <= extra_end;) {
      const uint64_t id = u16(extra), size = u16(extra + 2);
      check(extra + 4 + size <= extra_end, "entry '" + entry.name + "' has a damaged extra field");
      if (id == 1) {
        uint64_t field = extra + 4;
        for (uint64_t* value : {&entry.uncompressed_size, &entry.compressed_size, &entry.local_header_offset}) {
          if (*value != 0xffffffffULL) continue;
          check(field + 8 <= extra + 4 + size, "entry '" + entry.name + "' has a damaged zip64 field");
          *value = u64(field);
          field += 8;
        }
      }
      extra += 4 + size;
    }
    check((flags & 1) == 0, "entry '" + entry.name + "' is encrypted");
    check(entry.method == 0 || entry.method == 8,
          "entry '" + entry.name + "' uses compression method " + std::to_string(entry.method));
    check(entry.method != 0 || entry.compressed_size == entry.uncompressed_size,
          "entry '" + entry.name + "' records two sizes for stored data");
    at += kCentralHeaderSize + variable;
    return entry;
  }

  void local_header(ZipEntry& entry) const {
    const uint64_t at = entry.local_header_offset;
    need(at, kLocalHeaderSize, "the local header of entry '" + entry.name + "'");
    check(u32(at) == kLocalHeader, "the local header of entry '" + entry.name + "' is damaged");
    const uint64_t name_length = u16(at + 26), extra_length = u16(at + 28);
    need(at + kLocalHeaderSize, name_length + extra_length, "the local header of entry '" + entry.name + "'");
    check(bytes_.substr(at + kLocalHeaderSize, name_length) == entry.name,
          "the local header of entry '" + entry.name + "' names another entry");
    entry.data_offset = at + kLocalHeaderSize + name_length + extra_length;
    need(entry.data_offset, entry.compressed_size, "the data of entry '" + entry.name + "'");
  }

  // In the order of their local headers, each entry's data ends before the next header begins and
  // the last before the central directory: no byte belongs to two entries (duplicate records
  // pointing at one large entry would otherwise make the CRC check read it again and again).
  void check_no_overlaps(const std::vector<ZipEntry>& entries, uint64_t directory_offset) const {
    std::vector<size_t> order(entries.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return entries[a].local_header_offset < entries[b].local_header_offset;
    });
    for (size_t k = 0; k < order.size(); ++k) {
      const ZipEntry& entry = entries[order[k]];
      const uint64_t next = k + 1 < order.size() ? entries[order[k + 1]].local_header_offset : directory_offset;
      const uint64_t data_end = entry.data_offset + entry.compressed_size;
      check(data_end <= next, "the data of entry '" + entry.name + "' runs into " +
                                  (k + 1 < order.size() ? "entry '" + entries[order[k + 1]].name + "'"
                                                        : std::string("the central directory")));
    }
  }

  std::string_view bytes_;
  const std::string& file_;
  const std::string& argument_;
};

uint32_t crc_of_stored(const char* data, uint64_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (size > 0) {
    const uInt chunk = static_cast<uInt>(std::min<uint64_t>(size, uint64_t{1} << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

// The CRC-32 of a deflated entry's inflated data, or nullopt when it does not inflate to exactly
// `expected_size` bytes (it stops as soon as it passes them).
std::optional<uint32_t> crc_of_deflated(const char* data, uint64_t size, uint64_t expected_size) {
  z_stream stream{};
  if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) return std::nullopt;  // raw deflate, as in zip
  std::vector<Bytef> out(1 << 16);
  uLong crc = crc32(0L, Z_NULL, 0);
  uint64_t produced = 0;
  int status = Z_OK;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  while (status == Z_OK) {
    if (stream.avail_in == 0 && size > 0) {
      stream.avail_in = static_cast<uInt>(std::min<uint64_t>(size, uint64_t{1} << 30));
      size -= stream.avail_in;
    }
    stream.next_out = out.data();
    stream.avail_out = static_cast<uInt>(out.size());
    status = inflate(&stream, Z_NO_FLUSH);
    const uInt got = static_cast<uInt>(out.size()) - stream.avail_out;
    crc = crc32(crc, out.data(), got);
    produced += got;
    if (status == Z_BUF_ERROR && stream.avail_in == 0 && size == 0) break;  // input ended early
    if (produced > expected_size) break;
  }
  inflateEnd(&stream);
  if (status != Z_STREAM_END || produced != expected_size) return std::nullopt;
  return static_cast<uint32_t>(crc);
}

}  // namespace

std::vector<ZipEntry> zip_entries(std::string_view bytes, const std::string& file, const std::string& argument) {
  return ZipParser(bytes, file, argument).entries();
}

void verify_zip(std::string_view bytes, const std::string& file, const std::string& argument) {
  for (const ZipEntry& entry : zip_entries(bytes, file, argument)) {
    const char* data = bytes.data() + entry.data_offset;
    const std::optional<uint32_t> crc = entry.method == 0 ? std::optional<uint32_t>(crc_of_stored(data, entry.compressed_size))
                                                          : crc_of_deflated(data, entry.compressed_size, entry.uncompressed_size);
    SINKHORN_CHECK_ARG(crc && *crc == entry.crc32, argument,
                       "'" << file << "' is corrupt: entry '" << entry.name << "' "
                           << (crc ? "fails its CRC-32 check" : "does not inflate") << " (the file was damaged)");
  }
}

}  // namespace sinkhorn::io
