// The zip reader on archives written by hand, field by field from APPNOTE.TXT 4.3 (independent of
// the reader under test): what LibTorch writes passes, every malformed structure is refused by name
// before anything is inflated. tests/gen/checkpoint_test.cpp checks it on LibTorch's own archives.
#include "io/zip_archive.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sinkhorn/error.h"
#include "test_support.h"

namespace sinkhorn::io {
namespace {

using testing::as_chars;

TEST(ZipParser, ReadsZip64Records) {
  // One stored entry "a" holding "hello", with a zip64 end-of-central-directory record and
  // locator, as LibTorch writes for archives past 4 GiB; built from APPNOTE.TXT by hand.
  std::vector<uint8_t> zip;
  auto put = [&](uint64_t value, int size) {
    for (int k = 0; k < size; ++k) zip.push_back(static_cast<uint8_t>(value >> (8 * k)));
  };
  const std::string data = "hello";
  const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(data.data()), 5));
  put(0x04034b50, 4), put(45, 2), put(0, 2), put(0, 2), put(0, 4), put(crc, 4), put(5, 4), put(5, 4), put(1, 2),
      put(0, 2);
  zip.push_back('a');
  zip.insert(zip.end(), data.begin(), data.end());
  const uint64_t directory = zip.size();
  // Central record whose sizes and offset live in its zip64 extra field.
  put(0x02014b50, 4), put(45, 2), put(45, 2), put(0, 2), put(0, 2), put(0, 4), put(crc, 4), put(0xffffffff, 4),
      put(0xffffffff, 4), put(1, 2), put(28, 2), put(0, 2), put(0, 2), put(0, 2), put(0, 4), put(0xffffffff, 4);
  zip.push_back('a');
  put(1, 2), put(24, 2), put(5, 8), put(5, 8), put(0, 8);
  const uint64_t directory_size = zip.size() - directory, record = zip.size();
  put(0x06064b50, 4), put(44, 8), put(45, 2), put(45, 2), put(0, 4), put(0, 4), put(1, 8), put(1, 8),
      put(directory_size, 8), put(directory, 8);
  put(0x07064b50, 4), put(0, 4), put(record, 8), put(1, 4);
  put(0x06054b50, 4), put(0, 2), put(0, 2), put(0xffff, 2), put(0xffff, 2), put(0xffffffff, 4), put(0xffffffff, 4),
      put(0, 2);
  const std::vector<ZipEntry> entries = zip_entries(as_chars(zip), "z.zip", "checkpoint");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "a");
  EXPECT_EQ(entries[0].data_offset, 31u);
  EXPECT_EQ(entries[0].compressed_size, 5u);
  EXPECT_NO_THROW(verify_zip(as_chars(zip), "z.zip", "checkpoint"));
  zip[33] = 'L';
  EXPECT_NE(testing::error_message([&] { verify_zip(as_chars(zip), "z.zip", "checkpoint"); }).find("entry 'a' fails its CRC-32"),
            std::string::npos);
}

// A zip archive written field by field (APPNOTE.TXT 4.3), to make the malformed ones.
class HandZip {
 public:
  struct Entry {
    std::string name;
    uint64_t offset = 0, compressed = 0, uncompressed = 0;
    uint32_t crc = 0;
    uint16_t method = 0;
  };
  /// A local header and `data` (stored, or deflated raw bytes with `uncompressed` inflated size).
  Entry local(const std::string& name, const std::string& data, uint16_t method = 0, uint64_t uncompressed = 0,
              uint32_t crc = 0) {
    Entry entry{name, bytes.size(), data.size(), method == 0 ? data.size() : uncompressed, crc, method};
    if (method == 0) entry.crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(data.data()), data.size()));
    put(0x04034b50, 4), put(20, 2), put(0, 2), put(method, 2), put(0, 4), put(entry.crc, 4), put(entry.compressed, 4),
        put(entry.uncompressed, 4), put(name.size(), 2), put(0, 2);
    bytes += name + data;
    return entry;
  }
  /// A central directory of `entries`; returns where it starts.
  uint64_t directory(const std::vector<Entry>& entries) {
    const uint64_t start = bytes.size();
    for (const Entry& e : entries) {
      put(0x02014b50, 4), put(20, 2), put(20, 2), put(0, 2), put(e.method, 2), put(0, 4), put(e.crc, 4),
          put(e.compressed, 4), put(e.uncompressed, 4), put(e.name.size(), 2), put(0, 2), put(0, 2), put(0, 2),
          put(0, 2), put(0, 4), put(e.offset, 4);
      bytes += e.name;
    }
    return start;
  }
  /// The central directory of `entries` and the end record, with `comment` after it.
  void finish(const std::vector<Entry>& entries, const std::string& comment = "") {
    const uint64_t start = directory(entries);
    end_record(entries.size(), bytes.size() - start, start, comment.size());
    bytes += comment;
  }
  void end_record(uint64_t count, uint64_t size, uint64_t offset, uint64_t comment_length) {
    put(0x06054b50, 4), put(0, 2), put(0, 2), put(count, 2), put(count, 2), put(size, 4), put(offset, 4),
        put(comment_length, 2);
  }
  void put(uint64_t value, int size) {
    for (int k = 0; k < size; ++k) bytes.push_back(static_cast<char>(value >> (8 * k)));
  }
  std::string bytes;
};

std::string zip_problem(const std::string& bytes) {
  return testing::error_message([&] { verify_zip(bytes, "z.zip", "checkpoint"); });
}

TEST(ZipParser, AHandMadeArchivePassesItsChecks) {
  HandZip zip;
  const HandZip::Entry a = zip.local("a", "hello"), b = zip.local("b", std::string(1000, 'x'));
  zip.finish({a, b});
  EXPECT_EQ(zip_problem(zip.bytes), "no error");
}

TEST(ZipParser, OverlappingEntriesAreRefused) {
  // Entry b's local header and data lie inside entry a's data: a checker that followed every
  // record would read a's bytes again for b (and a million records could point at one entry).
  HandZip inner;
  inner.local("b", std::string(1000, 'y'));
  HandZip zip;
  HandZip::Entry a = zip.local("a", inner.bytes);
  HandZip::Entry b{"b", a.offset + 30 + 1, 1000, 1000, 0, 0};
  b.crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(std::string(1000, 'y').data()), 1000));
  zip.finish({a, b});
  EXPECT_NE(zip_problem(zip.bytes).find("corrupt or not a checkpoint: the data of entry 'a' runs into entry 'b'"),
            std::string::npos)
      << zip_problem(zip.bytes);
}

TEST(ZipParser, DuplicateNamesAreRefused) {
  HandZip zip;
  const HandZip::Entry first = zip.local("a", "one"), second = zip.local("a", "two");
  zip.finish({first, second});
  EXPECT_NE(zip_problem(zip.bytes).find("two entries are named 'a'"), std::string::npos) << zip_problem(zip.bytes);
  // The same record twice is a duplicate too (and an overlap).
  HandZip again;
  const HandZip::Entry only = again.local("a", "one");
  again.finish({only, only});
  EXPECT_NE(zip_problem(again.bytes).find("two entries are named 'a'"), std::string::npos) << zip_problem(again.bytes);
}

TEST(ZipParser, DeflatedEntriesClaimingHugeSizesAreRefusedBeforeInflating) {
  // 100 bytes of deflate claiming 4 GiB, then 50 MiB (within the per-entry cap, past deflate's
  // 1032:1 ratio).
  for (const uint64_t claimed : {uint64_t{0xfffffffe}, uint64_t{50} << 20}) {
    HandZip zip;
    zip.finish({zip.local("a", std::string(100, '\x01'), 8, claimed)});
    EXPECT_NE(zip_problem(zip.bytes).find("entry 'a' claims to inflate to " + std::to_string(claimed) + " bytes"),
              std::string::npos)
        << zip_problem(zip.bytes);
  }
}

TEST(ZipParser, TheEndRecordMustEndTheFileWithoutAComment) {
  HandZip good;
  good.finish({good.local("a", "hello")});
  EXPECT_EQ(zip_problem(good.bytes), "no error");
  // A comment: LibTorch writes none, and a reader that searched back for the end record could be
  // shown another directory than LibTorch's own reader.
  HandZip commented;
  commented.finish({commented.local("a", "hello")}, "a comment");
  EXPECT_NE(zip_problem(commented.bytes).find("no zip end-of-central-directory record at its end"), std::string::npos)
      << zip_problem(commented.bytes);
  // A forged end record in the comment, pointing at a forged directory (a wrong CRC). LibTorch's
  // reader takes the last end-record signature with 22 bytes after it; ours, the file's last 22
  // bytes: either the forged record is the one checked, or the file is refused.
  for (const std::string tail : {"", "X"}) {
    SCOPED_TRACE("comment: a forged end record" + tail);
    HandZip zip;
    const HandZip::Entry a = zip.local("a", "hello");
    HandZip::Entry wrong = a;
    wrong.crc ^= 1;
    const uint64_t forged = zip.directory({wrong});
    const uint64_t forged_size = zip.bytes.size() - forged;
    const uint64_t real = zip.directory({a});
    zip.end_record(1, zip.bytes.size() - real, real, 22 + tail.size());
    zip.end_record(1, forged_size, forged, 0);
    zip.bytes += tail;
    EXPECT_NE(zip_problem(zip.bytes).find(tail.empty() ? "its central directory does not end where its end record begins"
                                                       : "no zip end-of-central-directory record at its end"),
              std::string::npos)
        << zip_problem(zip.bytes);
  }
  // An end record announcing a comment the file does not hold.
  HandZip announced;
  const HandZip::Entry a = announced.local("a", "hello");
  const uint64_t directory = announced.directory({a});
  announced.end_record(1, announced.bytes.size() - directory, directory, 5);
  EXPECT_NE(zip_problem(announced.bytes).find("its zip end record announces a comment"), std::string::npos)
      << zip_problem(announced.bytes);
}

}  // namespace
}  // namespace sinkhorn::io
