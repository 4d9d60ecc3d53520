#include "gen/checkpoint.h"

#include <torch/serialize/output-archive.h>
#include <zlib.h>

#include <algorithm>
#include <optional>

#include "gen/atomic_file.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

constexpr const char* kCheckpointFormat = "sinkhorn-checkpoint-1";

// Little-endian fields of the zip format (APPNOTE.TXT 4.3), read from a range the caller checked.
uint64_t little_endian(const std::vector<char>& bytes, uint64_t at, int size) {
  uint64_t value = 0;
  for (int k = size - 1; k >= 0; --k) value = (value << 8) | static_cast<uint8_t>(bytes[at + static_cast<uint64_t>(k)]);
  return value;
}

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEndOfDirectory = 0x06054b50;
constexpr uint32_t kZip64EndOfDirectory = 0x06064b50, kZip64Locator = 0x07064b50;
constexpr uint64_t kLocalHeaderSize = 30, kCentralHeaderSize = 46, kEndOfDirectorySize = 22;

class ZipParser {
 public:
  ZipParser(const std::vector<char>& bytes, const std::string& file, const std::string& argument)
      : bytes_(bytes), file_(file), argument_(argument) {}

  std::vector<ZipEntry> entries() {
    const uint64_t end = find_end_of_directory();
    uint64_t count = u16(end + 10), directory_size = u32(end + 12), directory_offset = u32(end + 16);
    if (end >= 20 && u32(end - 20) == kZip64Locator) {
      const uint64_t record = u64(end - 20 + 8);
      need(record, 56, "the zip64 end-of-central-directory record");
      check(u32(record) == kZip64EndOfDirectory, "its zip64 end-of-central-directory record is damaged");
      count = u64(record + 32);
      directory_size = u64(record + 40);
      directory_offset = u64(record + 48);
    }
    need(directory_offset, directory_size, "the central directory");
    check(count <= directory_size / kCentralHeaderSize, "its central directory counts more entries than it holds");
    std::vector<ZipEntry> entries;
    uint64_t at = directory_offset;
    const uint64_t directory_end = directory_offset + directory_size;
    for (uint64_t k = 0; k < count; ++k) {
      entries.push_back(central_entry(at, directory_end));
      local_header(entries.back(), directory_offset);
    }
    return entries;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(argument_, "'" + file_ + "' is " + problem);
  }

 private:
  uint64_t u16(uint64_t at) const { return little_endian(bytes_, at, 2); }
  uint64_t u32(uint64_t at) const { return little_endian(bytes_, at, 4); }
  uint64_t u64(uint64_t at) const { return little_endian(bytes_, at, 8); }

  void check(bool condition, const std::string& problem) const {
    if (!condition) fail("corrupt or not a checkpoint: " + problem);
  }
  // [offset, offset + length) must lie in the file (written to avoid overflow).
  void need(uint64_t offset, uint64_t length, const std::string& what) const {
    check(offset <= bytes_.size() && length <= bytes_.size() - offset, what + " lies past the end of the file");
  }

  // The record ends the file, followed only by its comment; search back over the longest comment.
  uint64_t find_end_of_directory() const {
    if (bytes_.size() < kEndOfDirectorySize) {
      fail("not a checkpoint: too short to be a zip archive (" + std::to_string(bytes_.size()) + " bytes)");
    }
    const uint64_t last = bytes_.size() - kEndOfDirectorySize;
    const uint64_t first = last > 0xffff ? last - 0xffff : 0;
    for (uint64_t at = last + 1; at-- > first;) {
      if (u32(at) == kEndOfDirectory && at + kEndOfDirectorySize + u16(at + 20) == bytes_.size()) return at;
    }
    fail("not a checkpoint: no zip end-of-central-directory record (truncated, or another kind of file)");
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

  void local_header(ZipEntry& entry, uint64_t directory_offset) const {
    const uint64_t at = entry.local_header_offset;
    need(at, kLocalHeaderSize, "the local header of entry '" + entry.name + "'");
    check(u32(at) == kLocalHeader, "the local header of entry '" + entry.name + "' is damaged");
    const uint64_t name_length = u16(at + 26), extra_length = u16(at + 28);
    need(at + kLocalHeaderSize, name_length + extra_length, "the local header of entry '" + entry.name + "'");
    check(std::string(bytes_.data() + at + kLocalHeaderSize, name_length) == entry.name,
          "the local header of entry '" + entry.name + "' names another entry");
    entry.data_offset = at + kLocalHeaderSize + name_length + extra_length;
    need(entry.data_offset, entry.compressed_size, "the data of entry '" + entry.name + "'");
    check(entry.data_offset + entry.compressed_size <= directory_offset,
          "the data of entry '" + entry.name + "' runs into the central directory");
  }

  const std::vector<char>& bytes_;
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
// `expected_size` bytes.
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

bool all_finite(torch::nn::Module& module) {
  for (const auto& tensor : module.parameters()) {
    if (!tensor.isfinite().all().item<bool>()) return false;
  }
  for (const auto& tensor : module.buffers()) {
    if (!tensor.isfinite().all().item<bool>()) return false;
  }
  return true;
}

}  // namespace

std::vector<ZipEntry> zip_entries(const std::vector<char>& bytes, const std::string& file, const std::string& argument) {
  return ZipParser(bytes, file, argument).entries();
}

void verify_zip(const std::vector<char>& bytes, const std::string& file, const std::string& argument) {
  for (const ZipEntry& entry : zip_entries(bytes, file, argument)) {
    const char* data = bytes.data() + entry.data_offset;
    const std::optional<uint32_t> crc = entry.method == 0 ? std::optional<uint32_t>(crc_of_stored(data, entry.compressed_size))
                                                          : crc_of_deflated(data, entry.compressed_size, entry.uncompressed_size);
    SINKHORN_CHECK_ARG(crc && *crc == entry.crc32, argument,
                       "'" << file << "' is corrupt: entry '" << entry.name << "' "
                           << (crc ? "fails its CRC-32 check" : "does not inflate") << " (the file was damaged)");
  }
}

void write_checkpoint(const std::string& path, const CheckpointContents& contents) {
  SINKHORN_INTERNAL_CHECK(contents.config && contents.generator && contents.generator_optimizer,
                          "a checkpoint needs a config, a generator and its optimiser");
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
  archive.write("config", c10::IValue(to_json(*contents.config)));
  archive.write("step", c10::IValue(contents.step));
  archive.write("seconds", c10::IValue(contents.seconds));
  auto write_part = [&](const char* name, auto* saved) {
    torch::serialize::OutputArchive part;
    saved->save(part);
    archive.write(name, part);
  };
  write_part("generator", contents.generator);
  write_part("generator_optimizer", contents.generator_optimizer);
  if (contents.critic) {
    SINKHORN_INTERNAL_CHECK(contents.critic_optimizer, "a critic without its optimiser");
    write_part("critic", contents.critic);
    write_part("critic_optimizer", contents.critic_optimizer);
  }
  // In memory first: LibTorch's file writer aborts the process (an exception thrown from a
  // destructor) when the disk fills; a vector does not fill.
  std::vector<char> bytes;
  archive.save_to([&](const void* data, size_t size) -> size_t {
    bytes.insert(bytes.end(), static_cast<const char*>(data), static_cast<const char*>(data) + size);
    return size;
  });
  write_file_atomically(path, bytes.data(), bytes.size(), "out_dir");
}

struct Checkpoint::State {
  std::string path, argument;
  std::vector<char> bytes;  // kept for the archive's life: it may read records lazily
  torch::serialize::InputArchive archive;
  TrainConfig config;
  int64_t step = 0;
  double seconds = 0;

  [[noreturn]] void fail(const std::string& problem) const { throw Error(argument, "'" + path + "' " + problem); }

  template <typename Action>
  void guarded(const std::string& what, Action&& action) {
    try {
      action();
    } catch (const c10::Error& error) {
      // LibTorch's messages run over several lines: the first says what went wrong.
      const std::string detail = error.what_without_backtrace();
      fail("is not a usable sinkhorn checkpoint: cannot read its " + what + " (" +
           detail.substr(0, detail.find('\n')) + ")");
    }
  }
};

Checkpoint::Checkpoint(std::unique_ptr<State> state) : state_(std::move(state)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

Checkpoint Checkpoint::read(const std::string& path, const std::string& argument) {
  auto state = std::make_unique<State>();
  state->path = path;
  state->argument = argument;
  state->bytes = read_regular_file(path, kMaxCheckpointBytes, argument);
  verify_zip(state->bytes, path, argument);
  State& s = *state;
  s.guarded("archive", [&] { s.archive.load_from(s.bytes.data(), s.bytes.size()); });
  c10::IValue value;
  if (!(s.archive.try_read("format", value) && value.isString() && value.toStringRef() == kCheckpointFormat)) {
    s.fail(std::string("is not a sinkhorn checkpoint (no format tag ") + kCheckpointFormat + ")");
  }
  s.guarded("settings", [&] {
    s.archive.read("config", value);
    const std::string json = value.toStringRef();
    try {
      s.config = train_config_from_json(json);
    } catch (const Error& error) {
      s.fail(std::string("holds unreadable settings: ") + error.what());
    }
    s.archive.read("step", value);
    s.step = value.toInt();
    s.archive.read("seconds", value);
    s.seconds = value.toDouble();
  });
  if (s.step < 0) s.fail("records a negative step (" + std::to_string(s.step) + ")");
  return Checkpoint(std::move(state));
}

const TrainConfig& Checkpoint::config() const { return state_->config; }
int64_t Checkpoint::step() const { return state_->step; }
double Checkpoint::seconds() const { return state_->seconds; }

void Checkpoint::load_module(const std::string& part, torch::nn::Module& module) const {
  State& s = *state_;
  s.guarded(part, [&] {
    torch::serialize::InputArchive archive;
    s.archive.read(part, archive);
    module.load(archive);
  });
  // The CRCs prove the file is as written, not that what was written is usable.
  if (!all_finite(module)) s.fail("holds non-finite (NaN or Inf) weights in its " + part + "; it cannot be used");
}

void Checkpoint::load_optimizer(const std::string& part, torch::optim::Optimizer& optimizer) const {
  State& s = *state_;
  s.guarded(part, [&] {
    torch::serialize::InputArchive archive;
    s.archive.read(part, archive);
    optimizer.load(archive);
  });
}

}  // namespace sinkhorn::gen
