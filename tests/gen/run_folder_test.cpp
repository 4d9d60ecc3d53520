// The run folder's guards: one run at a time (the lock), no run over someone's files, an old run
// kept until the new one's first checkpoint, resume refusing before it writes, metrics.csv repair.
// Every refusal is checked against the folder's bytes before and after.
#include "gen/run_folder.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "gen/gen_test_support.h"
#include "gen/metrics_log.h"
#include "gen/saved_generator.h"
#include "gen/small_runs.h"
#include "gen/trainer.h"
#include "io/file_bytes.h"
#include "sinkhorn/error.h"

namespace sinkhorn::gen {
namespace {

using testing::file_digests;
using testing::ScratchFolder;
using testing::small_run;
using testing::tmp_files;

using testing::read_text;

// The error `action` throws; fails the test when it throws none.
Error error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error;
  }
  ADD_FAILURE() << "no sinkhorn::Error thrown";
  return Error("none");
}

// A finished run of `steps` steps with a checkpoint at the end (and every `checkpoint_every`).
void finished_run(const std::string& out, int64_t steps, int64_t checkpoint_every = 100) {
  TrainConfig c = small_run(out);
  c.steps = steps;
  c.checkpoint_every = checkpoint_every;
  ASSERT_EQ(Trainer::start(c, false).run().status, TrainStatus::finished);
}

TEST(RunFolder, ASecondRunOnTheSameFolderIsRefusedNamingTheFolderAndTheHolder) {
  ScratchFolder folder;
  const std::string out = folder.file("run");
  finished_run(out, 2);
  Trainer first = Trainer::resume(out, {4, std::nullopt});
  EXPECT_EQ(read_text(out + "/" + kLockFile), std::to_string(::getpid()) + "\n");
  const auto before = file_digests(out);
  for (const bool resume : {false, true}) {
    const Error error = error_of([&] {
      if (resume) Trainer::resume(out);
      else Trainer::start(small_run(out), true);
    });
    EXPECT_EQ(error.argument(), "out_dir");
    EXPECT_NE(error.problem().find("'" + out + "' is in use by another sinkhorn process (PID " +
                                   std::to_string(::getpid()) + ","),
              std::string::npos)
        << error.what();
    EXPECT_EQ(file_digests(out), before);
  }
  // The lock goes with the run: then the folder is free again, and no lock file stays.
  ASSERT_EQ(first.run().status, TrainStatus::finished);
  { Trainer gone = std::move(first); }
  EXPECT_FALSE(io::path_exists(out + "/" + kLockFile));
  EXPECT_NO_THROW(Trainer::resume(out));
}

TEST(RunFolder, ANonEmptyFolderWithoutACheckpointIsRefusedAnEmptyOneIsNot) {
  ScratchFolder folder;
  const std::string out = folder.file("notes");
  std::filesystem::create_directories(out);
  testing::write_bytes(out + "/thesis.tex", {'h', 'i'});
  const auto before = file_digests(out);
  const Error error = error_of([&] { Trainer::start(small_run(out), false); });
  EXPECT_EQ(error.argument(), "out_dir");
  EXPECT_NE(error.problem().find("is not empty and holds no checkpoint.pt (it holds 'thesis.tex')"), std::string::npos)
      << error.what();
  EXPECT_EQ(file_digests(out), before);

  // A run killed before its first checkpoint leaves config.json and metrics.csv: refused too.
  const std::string killed = folder.file("killed");
  std::filesystem::create_directories(killed);
  testing::write_bytes(killed + "/metrics.csv", {'s'});
  EXPECT_THROW(Trainer::start(small_run(killed), false), Error);

  // An empty folder, and one that does not exist yet, are fine.
  std::filesystem::create_directories(folder.file("empty"));
  EXPECT_NO_THROW(Trainer::start(small_run(folder.file("empty")), false));
  EXPECT_NO_THROW(Trainer::start(small_run(folder.file("new/deeper")), false));
  // A file in the way of the folder.
  const Error file_error = error_of([&] { Trainer::start(small_run(out + "/thesis.tex"), false); });
  EXPECT_NE(file_error.problem().find("exists and is not a folder"), std::string::npos) << file_error.what();
}

TEST(RunFolder, OverwriteKeepsTheOldRunUntilTheNewRunsFirstCheckpoint) {
  ScratchFolder folder;
  const std::string out = folder.file("run");
  TrainConfig old_run = small_run(out);
  old_run.steps = 4;
  old_run.sample_every = 2;  // scatter_000002.png, scatter_000004.png: files the new run will not write
  ASSERT_EQ(Trainer::start(old_run, false).run().status, TrainStatus::finished);
  const auto old_files = file_digests(out);
  ASSERT_TRUE(old_files.count("scatter_000002.png"));

  TrainConfig new_run = small_run(out);
  new_run.steps = 3;
  new_run.checkpoint_every = 2;
  new_run.seed = 7;
  {
    Trainer trainer = Trainer::start(new_run, true);
    // Until step 2's checkpoint the new run writes beside the old one.
    EXPECT_EQ(file_digests(out, {kLockFile, kStagingFolder}), old_files);
    EXPECT_TRUE(io::path_exists(out + "/" + kStagingFolder + "/metrics.csv"));
    std::vector<bool> old_run_intact;
    const TrainOutcome outcome = trainer.run([&](const StepReport&) {
      old_run_intact.push_back(file_digests(out, {kLockFile, kStagingFolder}) == old_files);
    });
    ASSERT_EQ(outcome.status, TrainStatus::finished);
    EXPECT_EQ(old_run_intact, (std::vector<bool>{true, false, false}));
  }
  // The new run replaced the old one whole: its files only, no staging folder.
  EXPECT_FALSE(io::path_exists(out + "/" + kStagingFolder));
  EXPECT_FALSE(io::path_exists(out + "/scatter_000002.png"));
  EXPECT_TRUE(io::path_exists(out + "/scatter_final.png"));
  EXPECT_EQ(SavedGenerator::load(out).config().seed, 7u);
  EXPECT_EQ(Trainer::resume(out).step(), 3);

  // A new run that fails before its first checkpoint leaves the old run as it was.
  const auto kept = file_digests(out);
  new_run.learning_rate = 1e30;
  new_run.checkpoint_every = 100;
  {
    Trainer failing = Trainer::start(new_run, true);
    const TrainOutcome outcome = failing.run();
    ASSERT_EQ(outcome.status, TrainStatus::non_finite);
    EXPECT_NE(outcome.message.find("the previous run in " + out + " is kept"), std::string::npos) << outcome.message;
  }
  EXPECT_EQ(file_digests(out), kept);

  // So does one stopped (Ctrl-C, SIGTERM) before its first step: an untrained run replaces nothing.
  {
    Trainer stopped = Trainer::start(new_run, true);
    const std::atomic<bool> stop{true};
    const TrainOutcome outcome = stopped.run({}, &stop);
    EXPECT_EQ(outcome.status, TrainStatus::interrupted);
    EXPECT_EQ(outcome.message, "the previous run in " + out + " is kept");
  }
  EXPECT_EQ(file_digests(out), kept);
}

TEST(RunFolder, AStaleStagingFolderAndTemporariesAreRemovedByTheNextResumeOrStart) {
  ScratchFolder folder;
  const std::string out = folder.file("run");
  finished_run(out, 2);
  const std::string checkpoint = read_text(out + "/checkpoint.pt");
  // What a new run killed before its first checkpoint, and a write cut short, leave behind.
  const auto leave_leftovers = [&] {
    std::filesystem::create_directories(out + "/" + kStagingFolder);
    testing::write_bytes(out + "/" + kStagingFolder + "/metrics.csv", {'x'});
    testing::write_bytes(out + "/checkpoint.pt.0123abcd.tmp", {'x'});
    testing::write_bytes(out + "/" + kLockFile, {'1', '\n'});  // a dead holder's PID: not a lock
  };
  testing::write_bytes(out + "/notes.tmp", {'n'});  // no run file's temporary: someone's, kept
  const std::vector<std::string> notes{out + "/notes.tmp"};
  leave_leftovers();
  {
    Trainer resumed = Trainer::resume(out, {3, std::nullopt});
    EXPECT_FALSE(io::path_exists(out + "/" + kStagingFolder));
    EXPECT_EQ(tmp_files(out), notes);
    EXPECT_EQ(read_text(out + "/checkpoint.pt"), checkpoint);
  }
  // A new run over the old one removes them as well, then stages its own files.
  leave_leftovers();
  {
    Trainer started = Trainer::start(small_run(out), true);
    EXPECT_EQ(tmp_files(out), notes);
    EXPECT_EQ(read_text(out + "/" + kStagingFolder + "/metrics.csv").rfind("step,", 0), 0u);
    EXPECT_EQ(read_text(out + "/checkpoint.pt"), checkpoint);
  }
}

// Two finished runs to stage one over the other by hand: the files a killed commit leaves.
class KilledCommit : public ::testing::Test {
 protected:
  void SetUp() override {
    TrainConfig old_config = small_run(old_run);
    old_config.steps = 4;
    old_config.sample_every = 2;  // scatter_000002.png, scatter_000004.png: the new run has none
    ASSERT_EQ(Trainer::start(old_config, false).run().status, TrainStatus::finished);
    TrainConfig new_config = small_run(new_run);
    new_config.steps = 3;
    new_config.seed = 7;
    ASSERT_EQ(Trainer::start(new_config, false).run().status, TrainStatus::finished);
    old_files = file_digests(old_run);
    new_files = file_digests(new_run);
    ASSERT_TRUE(old_files.count("scatter_000002.png"));
  }

  // A copy of the old run into which the new run's commit was killed: the new run's files in
  // `holder` (.staging before the commit point, .committing after it), the first `moved` of them
  // already in the folder (commit() moves checkpoint.pt first).
  std::string killed_commit(const std::string& name, const char* holder, size_t moved) {
    const std::string out = folder.file(name);
    std::filesystem::copy(old_run, out, std::filesystem::copy_options::recursive);
    const std::string held = out + "/" + holder;
    std::filesystem::create_directories(held);
    const std::vector<std::string> names{kCheckpointFile, "config.json", "metrics.csv", "scatter_final.png"};
    for (size_t k = 0; k < names.size(); ++k) {
      std::filesystem::copy_file(new_run + "/" + names[k], (k < moved ? out : held) + "/" + names[k],
                                 std::filesystem::copy_options::overwrite_existing);
    }
    std::ofstream(held + "/" + kOldRunFilesList) << "scatter_000002.png\nscatter_000004.png\n";
    return out;
  }

  ScratchFolder folder;
  std::string old_run = folder.file("old"), new_run = folder.file("new");
  std::map<std::string, std::string> old_files, new_files;
};

TEST_F(KilledCommit, BeforeTheCommitPointTheOldRunStaysTheRun) {
  const std::string refused = killed_commit("refused", kStagingFolder, 0);
  EXPECT_THROW(Trainer::start(small_run(refused), false), Error);
  EXPECT_EQ(file_digests(refused, {kStagingFolder}), old_files);  // a refused start removes nothing

  const std::string resumed = killed_commit("resumed", kStagingFolder, 0);
  {
    Trainer trainer = Trainer::resume(resumed);
    EXPECT_EQ(trainer.step(), 4);
    EXPECT_EQ(trainer.config().seed, 0u);
    EXPECT_TRUE(trainer.repairs().empty());
  }
  EXPECT_FALSE(io::path_exists(resumed + "/" + kStagingFolder));
  EXPECT_TRUE(io::path_exists(resumed + "/scatter_000002.png"));
}

TEST_F(KilledCommit, AfterTheCommitPointTheNextStartOrResumeFinishesIt) {
  // Killed right after the commit point, after checkpoint.pt moved in, after every file moved in.
  for (const size_t moved : {0, 1, 4}) {
    SCOPED_TRACE(std::to_string(moved) + " files moved in");
    // A start finishes the commit, then refuses the folder (it holds a run): the new run's files
    // alone are left, the old run's pictures gone.
    const std::string refused = killed_commit("refused" + std::to_string(moved), kCommittingFolder, moved);
    const Error error = error_of([&] { Trainer::start(small_run(refused), false); });
    EXPECT_NE(error.problem().find("already holds a run"), std::string::npos) << error.what();
    EXPECT_EQ(file_digests(refused), new_files);

    const std::string resumed = killed_commit("resumed" + std::to_string(moved), kCommittingFolder, moved);
    {
      Trainer trainer = Trainer::resume(resumed, {4, std::nullopt});
      EXPECT_EQ(trainer.step(), 3);
      EXPECT_EQ(trainer.config().seed, 7u);
      ASSERT_FALSE(trainer.repairs().empty());
      EXPECT_NE(trainer.repairs()[0].find("whose commit was cut short"), std::string::npos) << trainer.repairs()[0];
      EXPECT_FALSE(io::path_exists(resumed + "/" + kCommittingFolder));
      EXPECT_FALSE(io::path_exists(resumed + "/scatter_000002.png"));
      EXPECT_EQ(read_text(resumed + "/scatter_final.png"), read_text(new_run + "/scatter_final.png"));
      ASSERT_EQ(trainer.run().status, TrainStatus::finished);
    }
    EXPECT_EQ(SavedGenerator::load(resumed).step(), 4);
  }
}

TEST(RunFolder, ProblemsAfterTheCommitPointAreWarningsNotAFailedRun) {
  ScratchFolder folder;
  const std::string out = folder.file("run");
  TrainConfig old_run = small_run(out);
  old_run.steps = 4;
  old_run.sample_every = 2;
  ASSERT_EQ(Trainer::start(old_run, false).run().status, TrainStatus::finished);
  // An old picture that cannot be removed (a folder by its name, not empty).
  std::filesystem::remove(out + "/scatter_000002.png");
  std::filesystem::create_directories(out + "/scatter_000002.png");
  testing::write_bytes(out + "/scatter_000002.png/keep", {'k'});

  TrainConfig new_run = small_run(out);
  new_run.steps = 3;
  new_run.checkpoint_every = 2;
  new_run.seed = 7;
  std::vector<std::string> warnings;
  {
    Trainer trainer = Trainer::start(new_run, true);
    const TrainOutcome outcome = trainer.run([&](const StepReport& r) {
      // Someone's file dropped into the staging folder before the first checkpoint.
      if (r.step == 1) testing::write_bytes(out + "/" + kStagingFolder + "/notes.txt", {'n'});
      warnings.insert(warnings.end(), r.warnings.begin(), r.warnings.end());
    });
    ASSERT_EQ(outcome.status, TrainStatus::finished) << outcome.message;
  }
  ASSERT_EQ(warnings.size(), 2u) << ::testing::PrintToString(warnings);
  EXPECT_NE(warnings[0].find("cannot remove the old run's '" + out + "/scatter_000002.png'"), std::string::npos)
      << warnings[0];
  EXPECT_NE(warnings[1].find("'" + out + "/" + kCommittingFolder +
                             "' was left in place (it holds files this program did not write: 'notes.txt')"),
            std::string::npos)
      << warnings[1];
  // The new run is the run all the same.
  EXPECT_EQ(SavedGenerator::load(out).config().seed, 7u);
  EXPECT_FALSE(io::path_exists(out + "/scatter_000004.png"));
  EXPECT_FALSE(io::path_exists(out + "/" + kStagingFolder));
  EXPECT_EQ(Trainer::resume(out).step(), 3);
  // A new run there waits for the leftover to be moved away.
  const Error error = error_of([&] { Trainer::start(new_run, true); });
  EXPECT_NE(error.problem().find("holds files this program did not write"), std::string::npos) << error.what();
  testing::remove_tree(out + "/" + kCommittingFolder);
  EXPECT_NO_THROW(Trainer::start(new_run, true));
}

TEST(Resume, ARefusedResumeWritesNothingAndLeavesNoTmpFile) {
  ScratchFolder folder;
  const std::string out = folder.file("run");
  finished_run(out, 4, 2);
  const auto before = file_digests(out);
  struct Case {
    std::string what, argument, fragment;
    std::function<void()> damage;
    ResumeOverrides overrides;
  };
  const std::vector<Case> cases{
      {"steps below the checkpoint's", "steps", "3 is below the step of the checkpoint in '" + out + "' (4)", [] {},
       {3, std::nullopt}},
      {"a bad learning rate", "learning_rate", "must be positive", [] {}, {std::nullopt, -1.0}},
      {"a malformed metrics row", "out_dir", "has a malformed row: 'garbage line' (line 7)",
       [&] { std::ofstream(out + "/metrics.csv", std::ios::app) << "garbage line\n"; },
       {}},
      {"another file's header", "out_dir", "is not a metrics log of this program",
       [&] { testing::write_bytes(out + "/metrics.csv", {'a', ',', 'b', '\n'}); },
       {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string metrics = read_text(out + "/metrics.csv");
    c.damage();
    const auto damaged = file_digests(out);
    const Error error = error_of([&] { Trainer::resume(out, c.overrides); });
    EXPECT_EQ(error.argument(), c.argument);
    EXPECT_NE(error.problem().find(c.fragment), std::string::npos) << error.what();
    EXPECT_EQ(file_digests(out), damaged);
    EXPECT_TRUE(tmp_files(out).empty());
    std::ofstream(out + "/metrics.csv", std::ios::binary | std::ios::trunc) << metrics;
  }
  EXPECT_EQ(file_digests(out), before);
  // --steps equal to the saved step is accepted: nothing left to run.
  Trainer same = Trainer::resume(out, {4, std::nullopt});
  EXPECT_EQ(same.run().status, TrainStatus::finished);
}

TEST(Resume, AMetricsRowCutShortIsRepairedToTheCheckpointsStep) {
  ScratchFolder folder;
  const std::string out = folder.file("run");
  finished_run(out, 4);
  const std::string complete = read_text(out + "/metrics.csv");
  // A kill while step 5's row was written (rows past the checkpoint are dropped too).
  std::ofstream(out + "/metrics.csv", std::ios::app) << "5,0.012,,0.3,,,\n6,0.01";
  Trainer resumed = Trainer::resume(out, {6, std::nullopt});
  ASSERT_EQ(resumed.repairs().size(), 1u);
  EXPECT_NE(resumed.repairs()[0].find("ended in a row cut short ('6,0.01'); it was removed"), std::string::npos)
      << resumed.repairs()[0];
  EXPECT_EQ(read_text(out + "/metrics.csv"), complete);
  ASSERT_EQ(resumed.run().status, TrainStatus::finished);
  const std::string metrics = read_text(out + "/metrics.csv");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 1 + 1 + 6);  // header, step 0, steps 1-6
  EXPECT_EQ(metrics.back(), '\n');
}

TEST(MetricsLog, PlansAResumeWithoutWriting) {
  ScratchFolder folder;
  const std::string path = folder.file("metrics.csv");
  const std::string header = kMetricsHeader;
  // A missing file, and one cut inside its header, restart from the header.
  EXPECT_EQ(plan_metrics_resume(path, 3).text, header);
  EXPECT_EQ(plan_metrics_resume(path, 3).repairs.size(), 1u);
  EXPECT_FALSE(io::path_exists(path));
  std::ofstream(path) << "step,loss,cri";
  const MetricsResume cut = plan_metrics_resume(path, 3);
  EXPECT_EQ(cut.text, header);
  EXPECT_NE(cut.repairs.at(0).find("ended inside its header"), std::string::npos);
  // Rows up to the step stay, later ones go, blank lines are skipped; nothing to repair.
  MetricsRow row;
  std::string rows = header;
  for (int64_t step = 0; step <= 5; ++step) {
    row.step = step;
    row.loss = step > 0 ? std::optional<double>(0.5 / (step + 1)) : std::nullopt;
    row.eval_divergence = step % 2 == 0 ? std::optional<double>(0.25) : std::nullopt;
    rows += format_metrics_row(row) + (step == 2 ? "\n" : "");
  }
  std::ofstream(path, std::ios::trunc) << rows;
  const MetricsResume plan = plan_metrics_resume(path, 3);
  EXPECT_TRUE(plan.repairs.empty());
  EXPECT_EQ(plan.text, header + "0,,,0,0.25,,\n1,0.25,,0,,,\n2,0.16666667,,0,0.25,,\n3,0.125,,0,,,\n");
  // A complete row that is not a row cannot be repaired by guessing.
  std::ofstream(path, std::ios::trunc) << header << "1,2,3\n";
  EXPECT_THROW(plan_metrics_resume(path, 3), Error);
}

TEST(MetricsLog, ARowGluedToOneCutShortIsRemovedUnlessAKeptRowFollowsIt) {
  ScratchFolder folder;
  const std::string path = folder.file("metrics.csv");
  const std::string header = kMetricsHeader;
  const std::string kept = header + "0,,,0,0.25,,\n1,0.5,,0.1,,,\n2,0.4,,0.2,,,\n3,0.3,,0.3,,,\n";
  // Step 4's append failed half way and could not be cut back; step 5's (after a resume that did
  // not rewrite the file) landed on the same line.
  const std::string glued = "4,0.2" "5,0.1,,0.5,,,";
  std::ofstream(path, std::ios::binary) << kept << glued << "\n6,0.05,,0.6,,,\n";
  const MetricsResume plan = plan_metrics_resume(path, 3);
  EXPECT_EQ(plan.text, kept);
  ASSERT_EQ(plan.repairs.size(), 1u);
  EXPECT_NE(plan.repairs[0].find("had a row glued to one cut short by a failed write ('" + glued + "', line 6)"),
            std::string::npos)
      << plan.repairs[0];
  // Past a later checkpoint a kept row follows it: then it is not the end of a log, and refused.
  const Error error = error_of([&] { plan_metrics_resume(path, 6); });
  EXPECT_NE(error.problem().find("has a malformed row: '" + glued + "' (line 6); fix or delete that line to resume"),
            std::string::npos)
      << error.what();
}

TEST(MetricsLog, AMalformedRowIsQuotedWithItsInvisibleBytesShown) {
  ScratchFolder folder;
  const std::string path = folder.file("metrics.csv");
  std::ofstream(path, std::ios::binary) << kMetricsHeader << "1,0.5\t,,0.1,,,\x01\n";
  const Error error = error_of([&] { plan_metrics_resume(path, 3); });
  EXPECT_NE(error.problem().find("has a malformed row: '1,0.5\\x09,,0.1,,,\\x01' (line 2)"), std::string::npos)
      << error.what();
}

}  // namespace
}  // namespace sinkhorn::gen
