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

#include "gen/atomic_file.h"
#include "io/file_bytes.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

namespace fs = std::filesystem;

std::string join(const std::string& folder, const std::string& name) { return folder + "/" + name; }

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

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

void move_file(const std::string& from, const std::string& to) {
  SINKHORN_CHECK_ARG(std::rename(from.c_str(), to.c_str()) == 0, "out_dir",
                     "cannot move '" << from << "' to '" << to << "': " << std::strerror(errno));
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
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
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
      if (::ftruncate(fd, 0) == 0) (void)write_all(fd, pid.data(), pid.size());
      return fd;
    }
    ::close(fd);
  }
  SINKHORN_CHECK_ARG(false, "out_dir", "cannot lock '" << path << "': it keeps being replaced");
  return -1;
}

}  // namespace

bool is_run_file(const std::string& file) {
  const std::string name = ends_with(file, ".tmp") ? file.substr(0, file.size() - 4) : file;
  if (name == kCheckpointFile || name == "config.json" || name == "metrics.csv") return true;
  return ends_with(name, ".png") &&
         (starts_with(name, "samples_") || starts_with(name, "scatter_") || starts_with(name, "latent_grid_"));
}

RunFolder::RunFolder(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}

RunFolder::RunFolder(RunFolder&& other) noexcept
    : path_(std::move(other.path_)), lock_fd_(other.lock_fd_), staging_(other.staging_), fresh_(other.fresh_) {
  other.lock_fd_ = -1;
}

RunFolder& RunFolder::operator=(RunFolder&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    lock_fd_ = other.lock_fd_;
    staging_ = other.staging_;
    fresh_ = other.fresh_;
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
  return RunFolder(path, take_lock(path));
}

std::string RunFolder::file(const std::string& name) const {
  return staging_ ? join(join(path_, kStagingFolder), name) : join(path_, name);
}

void RunFolder::commit() {
  fresh_ = false;
  if (!staging_) return;
  const std::string staging = join(path_, kStagingFolder);
  const std::vector<std::string> staged = entries_of(staging);
  SINKHORN_INTERNAL_CHECK(std::find(staged.begin(), staged.end(), kCheckpointFile) != staged.end(),
                          "commit() before the staged run's first checkpoint");
  for (const std::string& name : staged) {
    if (name != kCheckpointFile) move_file(join(staging, name), join(path_, name));
  }
  // The old run's checkpoint is replaced last, in one rename: until then it is there to resume.
  move_file(join(staging, kCheckpointFile), join(path_, kCheckpointFile));
  const std::set<std::string> new_files(staged.begin(), staged.end());
  for (const std::string& name : entries_of(path_)) {
    if (is_run_file(name) && !new_files.count(name)) remove_file(join(path_, name));
  }
  SINKHORN_CHECK_ARG(::rmdir(staging.c_str()) == 0, "out_dir",
                     "cannot remove '" << staging << "': " << std::strerror(errno));
  staging_ = false;
}

void RunFolder::abandon() {
  if (staging_) {
    remove_folder_of_files(join(path_, kStagingFolder));
    staging_ = false;
  } else if (fresh_) {
    for (const std::string& name : entries_of(path_)) {
      if (is_run_file(name)) remove_file(join(path_, name));
    }
  }
  fresh_ = false;
}

void RunFolder::remove_leftovers() {
  remove_folder_of_files(join(path_, kStagingFolder));
  for (const std::string& name : entries_of(path_)) {
    if (ends_with(name, ".tmp") && is_run_file(name)) remove_file(join(path_, name));
  }
}

}  // namespace sinkhorn::gen
