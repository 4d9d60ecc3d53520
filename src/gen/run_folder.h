// The run folder (--out) of a training run, and who may write in it. A run holds an exclusive
// flock on <out>/.lock for its whole life (the holder's PID written inside), so a second `sinkhorn
// train` on the same folder is refused rather than interleaving two runs' files. A new run refuses
// a folder holding a run or someone's files unless told to overwrite; over an old run it writes
// into <out>/.staging until its first checkpoint, so that the old run stays whole if the new one
// dies before then.
#pragma once

#include <string>
#include <vector>

namespace sinkhorn::gen {

/// The file name of a run's checkpoint inside its folder.
inline constexpr const char* kCheckpointFile = "checkpoint.pt";
/// The lock file and the staging folder, inside a run folder.
inline constexpr const char* kLockFile = ".lock";
inline constexpr const char* kStagingFolder = ".staging";

/// True for the names of the files a run writes (checkpoint.pt, config.json, metrics.csv, its
/// pictures), and their .tmp files.
bool is_run_file(const std::string& name);

class RunFolder {
 public:
  /// Claims `path` for a new run: creates it if needed and takes its lock. Without `overwrite`,
  /// refuses a folder that holds a run (checkpoint.pt) or any other file; then removes a dead
  /// process's leftovers (a staging folder, .tmp files). With `overwrite` over a non-empty folder
  /// the new run's files are staged until commit(). Errors are Error("out_dir", ...).
  static RunFolder for_new_run(const std::string& path, bool overwrite);
  /// Claims the run in `path` to resume it: takes its lock and writes nothing else. Refuses a
  /// folder that does not exist.
  static RunFolder for_resume(const std::string& path);

  RunFolder(RunFolder&& other) noexcept;
  RunFolder& operator=(RunFolder&& other) noexcept;
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;
  /// Releases the lock (and removes the lock file).
  ~RunFolder();

  /// The run folder.
  const std::string& path() const { return path_; }
  /// Where this run's file `name` goes now: the staging folder until commit(), else the folder.
  std::string file(const std::string& name) const;
  /// True while the new run's files are staged beside an old run.
  bool staging() const { return staging_; }
  /// Puts the staged run in place of the old one: moves the staged files in, checkpoint.pt last,
  /// then removes the old run's other files. Does nothing when not staging. Call it after each
  /// checkpoint is written.
  void commit();
  /// Gives up a new run before its first checkpoint: removes its staging folder, or the files it
  /// wrote into a folder that was empty. Does nothing after commit() or for a resumed run.
  void abandon();
  /// Removes what a killed process left: the staging folder and the .tmp files of run files.
  void remove_leftovers();

 private:
  RunFolder(std::string path, int lock_fd);
  void release();

  std::string path_;
  int lock_fd_ = -1;
  bool staging_ = false;
  bool fresh_ = false;  // a new run in a folder that was empty, before its first checkpoint
};

}  // namespace sinkhorn::gen
