#include "gen/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "io/file_bytes.h"
#include "util/check.h"
#include "util/strings.h"

namespace sinkhorn::gen {
namespace {

namespace fs = std::filesystem;

std::string join(const std::string& folder, const std::string& name) { return folder + "/" + name; }

// The names in `folder` (files and folders), sorted; throws naming the folder.
std::vector<std::string> entries_of(const std::string& folder) {
  std::vector<std::string> names;
  std::error_code error;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    names.push_back(it->path().filename().string());
  }
  SINKHORN_CHECK_ARG(!error, "out_dir", "cannot list '" << folder << "': " << error.message());
  std::sort(names.begin(), names.end());
  return names;
}

void remove_file(const std::string& path) {
  SINKHORN_CHECK_ARG(::unlink(path.c_str()) == 0 || errno == ENOENT, "out_dir",
                     "cannot remove '" << path << "': " << std::strerror(errno));
}

// Staging folders are flat: a file at a time, no recursive removal.
void remove_folder_of_files(const std::string& folder) {
  if (!io::is_directory(folder)) return;
  for (const std::string& name : entries_of(folder)) remove_file(join(folder, name));
  SINKHORN_CHECK_ARG(::rmdir(folder.c_str()) == 0 || errno == ENOENT, "out_dir",
                     "cannot remove '" << folder << "': " << std::strerror(errno));
}

void sync_or_throw(const std::string& folder) {
  const int error = io::sync_folder(folder);
  SINKHORN_CHECK_ARG(error == 0, "out_dir", "cannot write '" << folder << "' to the disk: " << std::strerror(error));
}

// The PID a lock holder wrote into the lock file, or "" when there is none yet.
std::string holder_of(int fd) {
  char text[32] = {};
  const ssize_t got = ::pread(fd, text, sizeof(text) - 1, 0);
  std::string pid = got > 0 ? std::string(text, static_cast<size_t>(got)) : "";
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid.find_first_not_of("0123456789") == std::string::npos ? pid : "";
}

// An exclusive flock on <folder>/.lock, the file holding our PID. The holder removes the file when
// it lets go; someone who opened it just before then gets a lock on a removed file, so after
// locking we check that the name still leads to the file we locked, and start again if not.
int take_lock(const std::string& folder) {
  const std::string path = join(folder, kLockFile);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    SINKHORN_CHECK_ARG(fd >= 0, "out_dir", "cannot create the lock file '" << path << "': " << std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      const std::string holder = error == EWOULDBLOCK ? holder_of(fd) : "";
      ::close(fd);
      SINKHORN_CHECK_ARG(error != EWOULDBLOCK, "out_dir",
                         "'" << folder << "' is in use by another sinkhorn process ("
                             << (holder.empty() ? "its PID is not written yet" : "PID " + holder) << ", holding '"
                             << path << "'); wait for it to finish or stop it");
      SINKHORN_CHECK_ARG(false, "out_dir", "cannot lock '" << path << "': " << std::strerror(error));
    }
    struct stat locked, named;
    if (::fstat(fd, &locked) == 0 && ::stat(path.c_str(), &named) == 0 && locked.st_ino == named.st_ino &&
        locked.st_dev == named.st_dev) {
      // The PID only informs whoever is refused; on a full disk the lock holds without it.
      const std::string pid = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) == 0) (void)io::write_all(fd, pid.data(), pid.size());
      return fd;
    }
    ::close(fd);
  }
  SINKHORN_CHECK_ARG(false, "out_dir", "cannot lock '" << path << "': it keeps being replaced");
  return -1;
}

}  // namespace

bool is_run_file(const std::string& name) {
  if (name == kCheckpointFile || name == "config.json" || name == "metrics.csv") return true;
  return ends_with(name, ".png") &&
         (starts_with(name, "samples_") || starts_with(name, "scatter_") || starts_with(name, "latent_grid_"));
}

bool is_run_temporary(const std::string& name) {
  const std::string_view final_name = io::final_name_of_temporary(name);
  return !final_name.empty() && is_run_file(std::string(final_name));
}

RunFolder::RunFolder(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}

RunFolder::RunFolder(RunFolder&& other) noexcept
    : path_(std::move(other.path_)),
      lock_fd_(other.lock_fd_),
      staging_(other.staging_),
      fresh_(other.fresh_),
      repairs_(std::move(other.repairs_)) {
  other.lock_fd_ = -1;
}

RunFolder& RunFolder::operator=(RunFolder&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    lock_fd_ = other.lock_fd_;
    staging_ = other.staging_;
    fresh_ = other.fresh_;
    repairs_ = std::move(other.repairs_);
    other.lock_fd_ = -1;
  }
  return *this;
}

RunFolder::~RunFolder() { release(); }

void RunFolder::release() {
  if (lock_fd_ < 0) return;
  // Unlink while still holding the lock: see take_lock for why a waiting process notices.
  ::unlink(join(path_, kLockFile).c_str());
  ::close(lock_fd_);
  lock_fd_ = -1;
}

RunFolder RunFolder::for_new_run(const std::string& path, bool overwrite) {
  SINKHORN_CHECK_ARG(!path.empty(), "out_dir", "must name a folder");
  SINKHORN_CHECK_ARG(!io::path_exists(path) || io::is_directory(path), "out_dir",
                     "'" << path << "' exists and is not a folder");
  std::error_code error;
  fs::create_directories(path, error);
  SINKHORN_CHECK_ARG(!error, "out_dir", "cannot create folder '" << path << "': " << error.message());
  RunFolder folder(path, take_lock(path));
  folder.recover();

  std::vector<std::string> others;  // what is there besides our lock and a dead run's staging folder
  for (const std::string& name : entries_of(path)) {
    if (name != kLockFile && name != kStagingFolder) others.push_back(name);
  }
  const bool holds_run = io::path_exists(join(path, kCheckpointFile));
  if (!overwrite) {
    SINKHORN_CHECK_ARG(!holds_run, "out_dir",
                       "'" << path << "' already holds a run (checkpoint.pt): pass --resume to continue it or "
                           << "--overwrite to start again");
    SINKHORN_CHECK_ARG(others.empty(), "out_dir",
                       "'" << path << "' is not empty and holds no checkpoint.pt (it holds '" << others.front() << "'"
                           << (others.size() > 1 ? " and " + std::to_string(others.size() - 1) + " more" : "")
                           << "): choose a new or empty folder, or pass --overwrite to start a run there anyway");
  }
  // What a finished commit left there is someone's: the next commit could not take that name.
  const std::string committing = join(path, kCommittingFolder);
  SINKHORN_CHECK_ARG(!io::path_exists(committing), "out_dir",
                     "'" << committing << "' holds files this program did not write; move them away to start a run "
                         << "in '" << path << "'");
  folder.remove_leftovers();
  if (!others.empty()) {
    const std::string staging = join(path, kStagingFolder);
    SINKHORN_CHECK_ARG(::mkdir(staging.c_str(), 0755) == 0, "out_dir",
                       "cannot create folder '" << staging << "': " << std::strerror(errno));
    folder.staging_ = true;
  } else {
    folder.fresh_ = true;
  }
  return folder;
}

RunFolder RunFolder::for_resume(const std::string& path) {
  SINKHORN_CHECK_ARG(io::is_directory(path), "out_dir",
                     "'" << path << "' holds no checkpoint.pt to resume from ("
                         << (io::path_exists(path) ? "it is not a folder" : "no such folder") << ")");
  RunFolder folder(path, take_lock(path));
  folder.recover();
  return folder;
}

std::string RunFolder::file(const std::string& name) const {
  return staging_ ? join(join(path_, kStagingFolder), name) : join(path_, name);
}

bool RunFolder::pending_commit() const { return io::is_directory(join(path_, kCommittingFolder)); }

std::vector<std::string> RunFolder::commit() {
  fresh_ = false;
  if (!staging_) return {};
  const std::string staging = join(path_, kStagingFolder), committing = join(path_, kCommittingFolder);
  const std::vector<std::string> staged = entries_of(staging);
  SINKHORN_INTERNAL_CHECK(std::find(staged.begin(), staged.end(), kCheckpointFile) != staged.end(),
                          "commit() before the staged run's first checkpoint");
  // Which of the old run's files go is decided now and written down, so that whoever finishes
  // the commit removes exactly those, even after some new files have moved in.
  const std::set<std::string> new_files(staged.begin(), staged.end());
  std::string old_files;
  for (const std::string& name : entries_of(path_)) {
    if (is_run_file(name) && !new_files.count(name)) old_files += name + "\n";
  }
  io::write_file_atomically(join(staging, kOldRunFilesList), old_files, "out_dir");
  sync_or_throw(staging);
  // The commit point.
  SINKHORN_CHECK_ARG(std::rename(staging.c_str(), committing.c_str()) == 0, "out_dir",
                     "cannot move '" << staging << "' to '" << committing << "': " << std::strerror(errno));
  staging_ = false;
  std::vector<std::string> warnings;
  if (const int error = io::sync_folder(path_)) {
    warnings.push_back("cannot write '" + path_ + "' to the disk: " + std::strerror(error));
  }
  for (std::string& warning : finish_commit()) warnings.push_back(std::move(warning));
  return warnings;
}

std::vector<std::string> RunFolder::finish_commit() {
  const std::string committing = join(path_, kCommittingFolder);
  std::vector<std::string> warnings;
  if (!io::is_directory(committing)) return warnings;
  std::vector<std::string> names;
  for (const std::string& name : entries_of(committing)) {
    if (is_run_file(name)) names.push_back(name);
  }
  // The checkpoint first: from then on the folder's checkpoint is the new run's.
  std::stable_partition(names.begin(), names.end(), [](const std::string& name) { return name == kCheckpointFile; });
  for (const std::string& name : names) {
    const std::string from = join(committing, name), to = join(path_, name);
    SINKHORN_CHECK_ARG(std::rename(from.c_str(), to.c_str()) == 0, "out_dir",
                       "cannot move '" << from << "' to '" << to << "': " << std::strerror(errno)
                                       << " (the new run is committed; the next start or resume of '" << path_
                                       << "' finishes moving it in)");
  }
  // Durable moves before removals: after a power cut the folder never lacks both runs' files.
  if (const int error = io::sync_folder(path_)) {
    warnings.push_back("cannot write '" + path_ + "' to the disk: " + std::strerror(error));
  }
  // Cleanup from here on: best effort, the new run is in place whatever fails.
  const std::string list = join(committing, kOldRunFilesList);
  if (io::path_exists(list)) {
    try {
      std::istringstream names_to_remove(io::read_regular_file(list, uint64_t{1} << 20, "out_dir"));
      for (std::string name; std::getline(names_to_remove, name);) {
        if (!is_run_file(name) || std::find(names.begin(), names.end(), name) != names.end()) continue;
        const std::string old_file = join(path_, name);
        if (::unlink(old_file.c_str()) != 0 && errno != ENOENT) {
          warnings.push_back("cannot remove the old run's '" + old_file + "': " + std::strerror(errno));
        }
      }
      remove_file(list);
    } catch (const Error& error) {
      warnings.push_back(error.what());
    }
  }
  if (::rmdir(committing.c_str()) != 0) {
    const int error = errno;
    std::vector<std::string> left;
    std::error_code ignored;
    for (fs::directory_iterator it(committing, ignored), end; !ignored && it != end; it.increment(ignored)) {
      left.push_back(it->path().filename().string());
    }
    warnings.push_back("'" + committing + "' was left in place (" +
                       (error == ENOTEMPTY || error == EEXIST
                            ? "it holds files this program did not write: '" + (left.empty() ? "" : left.front()) +
                                  "'" + (left.size() > 1 ? " and " + std::to_string(left.size() - 1) + " more" : "")
                            : std::string(std::strerror(error))) +
                       "); move them away before the next start in '" + path_ + "'");
  }
  return warnings;
}

void RunFolder::recover() {
  if (!pending_commit()) return;
  const std::string committing = join(path_, kCommittingFolder);
  const std::vector<std::string> held = entries_of(committing);
  const bool cut_short = std::any_of(held.begin(), held.end(), [](const std::string& name) {
    return is_run_file(name) || name == kOldRunFilesList;
  });
  if (cut_short) {
    repairs_.push_back("'" + path_ + "' held a new run whose commit was cut short (in '" + committing +
                       "'); it was finished: that run is the folder's run");
  }
  for (std::string& warning : finish_commit()) repairs_.push_back(std::move(warning));
}

void RunFolder::abandon() {
  if (staging_) {
    remove_folder_of_files(join(path_, kStagingFolder));
    staging_ = false;
  } else if (fresh_) {
    for (const std::string& name : entries_of(path_)) {
      if (is_run_file(name) || is_run_temporary(name)) remove_file(join(path_, name));
    }
  }
  fresh_ = false;
}

void RunFolder::remove_leftovers() {
  remove_folder_of_files(join(path_, kStagingFolder));
  for (const std::string& name : entries_of(path_)) {
    if (is_run_temporary(name)) remove_file(join(path_, name));
  }
}

}  // namespace sinkhorn::gen
