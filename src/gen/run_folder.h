// The run folder (--out) of a training run, and who may write in it. A run holds an exclusive
// flock on <out>/.lock for its whole life (the holder's PID written inside), so a second `sinkhorn
// train` on the same folder is refused rather than interleaving two runs' files. A new run refuses
// a folder holding a run or someone's files unless told to overwrite; over an old run it writes
// into <out>/.staging until its first checkpoint, so that the old run stays whole if the new one
// dies before then.
//
// The new run replaces the old one in one rename, the commit point: .staging becomes .committing.
// Before it the old run is whole; after it the new run is the run, even if the process dies while
// its files are moved out of .committing (checkpoint.pt first) and the old run's other files are
// removed: whoever takes the folder's lock next finishes that commit before anything else.
#pragma once

#include <string>
#include <vector>

namespace sinkhorn::gen {

/// The file name of a run's checkpoint inside its folder.
inline constexpr const char* kCheckpointFile = "checkpoint.pt";
/// The lock file, inside a run folder.
inline constexpr const char* kLockFile = ".lock";
/// A new run's files, beside an old run, until its first checkpoint.
inline constexpr const char* kStagingFolder = ".staging";
/// A new run's files once committed, until they are moved into the run folder.
inline constexpr const char* kCommittingFolder = ".committing";
/// Inside the staging (then committing) folder: the old run's files that the commit removes once
/// the new run's are in place (pictures the new run did not write), one name a line.
inline constexpr const char* kOldRunFilesList = ".old_run_files";

/// True for the names of the files a run writes: checkpoint.pt, config.json, metrics.csv and its
/// pictures (samples_*.png, scatter_*.png, latent_grid_*.png).
bool is_run_file(const std::string& name);
/// True for the temporary file of a run file (io::AtomicFile's "<name>.<8 hex digits>.tmp").
bool is_run_temporary(const std::string& name);

class RunFolder {
 public:
  /// Claims `path` for a new run: creates it if needed, takes its lock and finishes a commit cut
  /// short. Without `overwrite`, refuses a folder that holds a run (checkpoint.pt) or any other
  /// file; then removes a dead process's leftovers (a staging folder, temporary files). With
  /// `overwrite` over a non-empty folder the new run's files are staged until commit(). Errors are
  /// Error("out_dir", ...).
  static RunFolder for_new_run(const std::string& path, bool overwrite);
  /// Claims the run in `path` to resume it: takes its lock and finishes a commit cut short (the
  /// one change it makes: that run is already the folder's run). Refuses a folder that does not
  /// exist.
  static RunFolder for_resume(const std::string& path);

  RunFolder(RunFolder&& other) noexcept;
  RunFolder& operator=(RunFolder&& other) noexcept;
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;
  /// Releases the lock (and removes the lock file).
  ~RunFolder();

  /// The run folder.
  const std::string& path() const { return path_; }
  /// What claiming the folder repaired (a commit cut short, finished), one line each.
  const std::vector<std::string>& repairs() const { return repairs_; }
  /// Where this run's file `name` goes now: the staging folder until commit(), else the folder.
  std::string file(const std::string& name) const;
  /// True while the new run's files are staged beside an old run.
  bool staging() const { return staging_; }
  /// True while a committed run's files still wait in .committing (a move failed).
  bool pending_commit() const;
  /// Puts the staged run in place of the old one (the commit point, then the moves; see above).
  /// Does nothing when not staging; call it after each checkpoint is written. Throws
  /// Error("out_dir", ...) when the commit point is not reached (the old run is kept) or a file
  /// cannot be moved in (the message says the next start or resume finishes it); problems after
  /// that (an old picture that cannot be removed, someone's file in the staging folder) do not
  /// undo the commit and come back as warnings, one line each.
  std::vector<std::string> commit();
  /// Gives up a new run before its first checkpoint: removes its staging folder, or the files it
  /// wrote into a folder that was empty, leaving the folder as the run found it. Does nothing after
  /// commit() or for a resumed run.
  void abandon();
  /// Removes what a killed process left: the staging folder and the temporary files of run files.
  void remove_leftovers();

 private:
  RunFolder(std::string path, int lock_fd);
  void release();
  // Moves the files of .committing into the folder and removes the old run's; see commit().
  std::vector<std::string> finish_commit();
  // Finishes a commit a killed process left, noting it in repairs_.
  void recover();

  std::string path_;
  int lock_fd_ = -1;
  bool staging_ = false;
  bool fresh_ = false;  // a new run in a folder that was empty, before its first checkpoint
  std::vector<std::string> repairs_;
};

}  // namespace sinkhorn::gen
