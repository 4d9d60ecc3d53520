// The zip archives LibTorch writes (checkpoint.pt is one), read from bytes in memory with every
// structure checked before anything trusts it (APPNOTE.TXT 4.3): LibTorch itself loads an archive
// with flipped bytes in a tensor without a word, and its reader was not written to resist damage.
// Stored and deflated entries only (zlib inflates the latter), zip64 where LibTorch writes it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sinkhorn::io {

/// The most a deflated zip entry may inflate to. LibTorch deflates only its small code and pickle
/// records (kilobytes) and stores tensors as they are; deflate itself cannot expand data more than
/// 1032 times, which bounds an entry further. Together they bound the work of verify_zip.
inline constexpr uint64_t kMaxInflatedEntry = uint64_t{64} << 20;
/// The most all deflated entries of one archive may inflate to together.
inline constexpr uint64_t kMaxInflatedTotal = uint64_t{256} << 20;

/// One entry of a zip file, as its central directory records it.
struct ZipEntry {
  std::string name;                    ///< its path inside the archive
  uint16_t method = 0;                 ///< 0: stored, 8: deflated
  uint32_t crc32 = 0;                  ///< CRC-32 of the uncompressed data
  uint64_t compressed_size = 0;        ///< bytes of data in the file
  uint64_t uncompressed_size = 0;      ///< bytes once inflated
  uint64_t central_header_offset = 0;  ///< where its central-directory record starts
  uint64_t local_header_offset = 0;    ///< where its local header starts
  uint64_t data_offset = 0;            ///< where its data starts, after the local header
};

/// The entries of the zip archive `bytes`, in central-directory order, as LibTorch writes them: the
/// end-of-central-directory record ends the file (no archive comment; a zip64 locator and record
/// just before it when present), so the directory checked here is the one LibTorch reads; the
/// central directory ends where that record begins; every record and local header lies in the
/// file; no two entries share a name; each entry's data ends before the next local header (no
/// overlaps: checking every entry reads each byte of the file at most once); a deflated entry
/// inflates to at most kMaxInflatedEntry bytes and 1032 times its size, all of them together to at
/// most kMaxInflatedTotal. Throws Error(argument, "'<file>' ...") naming what is malformed.
std::vector<ZipEntry> zip_entries(std::string_view bytes, const std::string& file, const std::string& argument);

/// Checks every entry's CRC-32 against its data (inflating deflated entries); throws
/// Error(argument, ...) naming the file and the first corrupt entry.
void verify_zip(std::string_view bytes, const std::string& file, const std::string& argument);

}  // namespace sinkhorn::io
