#include "gen/checkpoint.h"

#include <torch/optim/adam.h>
#include <torch/optim/rmsprop.h>
#include <torch/serialize/output-archive.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include "gen/models/networks.h"
#include "io/atomic_file.h"
#include "io/file_bytes.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

constexpr const char* kCheckpointFormat = "sinkhorn-checkpoint-1";

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

std::string describe(at::IntArrayRef sizes, at::ScalarType type) {
  std::ostringstream text;
  text << sizes << " " << type;
  return text.str();
}
std::string describe(const at::Tensor& tensor) { return describe(tensor.sizes(), tensor.scalar_type()); }

// The name, sizes and type of every parameter and buffer of a module.
struct TensorLayout {
  std::string name;
  std::vector<int64_t> sizes;
  at::ScalarType type;
};

std::vector<TensorLayout> layout_of(const torch::nn::Module& module) {
  std::vector<TensorLayout> layout;
  for (const auto& item : module.named_parameters()) {
    layout.push_back({item.key(), item.value().sizes().vec(), item.value().scalar_type()});
  }
  for (const auto& item : module.named_buffers()) {
    layout.push_back({item.key(), item.value().sizes().vec(), item.value().scalar_type()});
  }
  return layout;
}

// What of `module` no longer has the layout it had before loading, or "" when nothing.
std::string layout_change(const std::vector<TensorLayout>& before, const torch::nn::Module& module) {
  const std::vector<TensorLayout> after = layout_of(module);
  if (after.size() != before.size()) return "it has another number of tensors";
  for (size_t k = 0; k < before.size(); ++k) {
    if (after[k].sizes != before[k].sizes || after[k].type != before[k].type) {
      return "'" + before[k].name + "' is " + describe(after[k].sizes, after[k].type) + " where the settings build " +
             describe(before[k].sizes, before[k].type);
    }
  }
  return "";
}

// The tensors an optimiser keeps for one parameter (undefined ones left out).
std::vector<std::pair<const char*, at::Tensor>> state_tensors(const torch::optim::OptimizerParamState& state) {
  std::vector<std::pair<const char*, at::Tensor>> tensors;
  if (const auto* adam = dynamic_cast<const torch::optim::AdamParamState*>(&state)) {
    tensors = {{"exp_avg", adam->exp_avg()}, {"exp_avg_sq", adam->exp_avg_sq()}, {"max_exp_avg_sq", adam->max_exp_avg_sq()}};
  } else if (const auto* rmsprop = dynamic_cast<const torch::optim::RMSpropParamState*>(&state)) {
    tensors = {{"square_avg", rmsprop->square_avg()},
               {"momentum_buffer", rmsprop->momentum_buffer()},
               {"grad_avg", rmsprop->grad_avg()}};
  }
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [](const auto& item) { return !item.second.defined(); }),
                tensors.end());
  return tensors;
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
  io::write_file_atomically(path, bytes.data(), bytes.size(), "out_dir");
}

struct Checkpoint::State {
  std::string path, argument;
  std::string bytes;  // kept for the archive's life: it may read records lazily
  torch::serialize::InputArchive archive;
  TrainConfig config;
  int64_t step = 0;
  double seconds = 0;

  [[noreturn]] void fail(const std::string& problem) const { throw Error(argument, "'" + path + "' " + problem); }

  // Runs LibTorch's reading of `what`; whatever LibTorch throws (c10::Error, or a standard
  // exception from deep inside its unpickler) becomes one line naming the checkpoint. Our own
  // errors pass through as they are.
  template <typename Action>
  void guarded(const std::string& what, Action&& action) {
    std::string detail;
    try {
      action();
      return;
    } catch (const Error&) {
      throw;
    } catch (const InternalError&) {
      throw;
    } catch (const c10::Error& error) {
      detail = error.what_without_backtrace();
    } catch (const std::exception& error) {
      detail = error.what();
    }
    // LibTorch's messages run over several lines: the first says what went wrong (when it says
    // anything: its TorchScript lexer throws some errors with an empty first line).
    const std::string first_line = detail.substr(0, detail.find('\n'));
    fail("is not a usable sinkhorn checkpoint: cannot read its " + what + " (" +
         (first_line.empty() ? std::string("LibTorch could not parse it") : first_line) + ")");
  }
};

Checkpoint::Checkpoint(std::unique_ptr<State> state) : state_(std::move(state)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

Checkpoint Checkpoint::read(const std::string& path, const std::string& argument) {
  auto state = std::make_unique<State>();
  State& s = *state;
  s.path = path;
  s.argument = argument;
  s.bytes = io::read_regular_file(path, kMaxCheckpointBytes, argument);
  verify_zip(s.bytes, path, argument);
  // Onto the CPU whatever device wrote it (a run trained on a GPU is read on a machine without
  // one); the trainer moves what it loads to its own device.
  s.guarded("archive", [&] { s.archive.load_from(s.bytes.data(), s.bytes.size(), at::Device(at::kCPU)); });
  c10::IValue value;
  bool tagged = false;
  s.guarded("format tag", [&] {
    tagged = s.archive.try_read("format", value) && value.isString() && value.toStringRef() == kCheckpointFormat;
  });
  if (!tagged) s.fail(std::string("is not a sinkhorn checkpoint (no format tag ") + kCheckpointFormat + ")");
  std::string json;
  s.guarded("settings", [&] {
    s.archive.read("config", value);
    json = value.toStringRef();
    s.archive.read("step", value);
    s.step = value.toInt();
    s.archive.read("seconds", value);
    s.seconds = value.toDouble();
  });
  try {
    s.config = train_config_from_json(json);
    validate(s.config);
  } catch (const Error& error) {
    s.fail(std::string("holds unusable settings: ") + error.what());
  }
  if (s.step < 0 || s.step > s.config.steps) {
    s.fail("records step " + std::to_string(s.step) + ", outside its run of " + std::to_string(s.config.steps) + " steps");
  }
  if (!(s.seconds >= 0 && std::isfinite(s.seconds))) s.fail("records an impossible training time");
  return Checkpoint(std::move(state));
}

const TrainConfig& Checkpoint::config() const { return state_->config; }
int64_t Checkpoint::step() const { return state_->step; }
double Checkpoint::seconds() const { return state_->seconds; }

void Checkpoint::load_module(const std::string& part, torch::nn::Module& module) const {
  State& s = *state_;
  // LibTorch's load replaces each tensor with the saved one (Tensor::set_), whatever its shape.
  const std::vector<TensorLayout> layout = layout_of(module);
  s.guarded(part, [&] {
    torch::serialize::InputArchive archive;
    s.archive.read(part, archive);
    module.load(archive);
  });
  const std::string change = layout_change(layout, module);
  if (!change.empty()) s.fail("holds a " + part + " that does not fit its settings: " + change);
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
  // Each parameter's state (running averages) must have the parameter's shape and type, or the
  // next update fails deep in LibTorch or, worse, broadcasts.
  for (const auto& group : optimizer.param_groups()) {
    for (const at::Tensor& parameter : group.params()) {
      const auto found = optimizer.state().find(parameter.unsafeGetTensorImpl());
      if (found == optimizer.state().end()) continue;  // no update yet
      for (const auto& [name, tensor] : state_tensors(*found->second)) {
        if (tensor.sizes() != parameter.sizes() || tensor.scalar_type() != parameter.scalar_type()) {
          s.fail("holds a " + part + " that does not fit its settings: its " + name + " is " + describe(tensor) +
                 " for a parameter of " + describe(parameter));
        }
      }
    }
  }
}

void Checkpoint::with_saved_settings(const std::function<void()>& build) const {
  try {
    build();
  } catch (const Error& error) {
    if (error.argument().empty()) throw;  // it names its own file (a data file), not a setting
    state_->fail("holds settings that cannot be used now: " + std::string(error.what()));
  }
}

}  // namespace sinkhorn::gen
