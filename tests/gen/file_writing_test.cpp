// Writing a run's files: io::AtomicFile never follows a planted link and leaves no temporary
// behind, NpyWriter writes what NumPy reads, and a full disk is met without root: a file-size limit
// (RLIMIT_FSIZE, SIGXFSZ ignored) in a forked child makes writes past it fail with EFBIG, as they
// fail with ENOSPC on a full disk (the tmpfs tests in checkpoint_test.cpp need root to mount one).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>

#include "gen/gen_test_support.h"
#include "gen/saved_generator.h"
#include "gen/small_runs.h"
#include "gen/trainer.h"
#include "io/array_io.h"
#include "io/atomic_file.h"
#include "io/file_bytes.h"
#include "io/npy_writer.h"
#include "sinkhorn/error.h"

namespace sinkhorn::gen {
namespace {

using testing::ScratchFolder;
using testing::small_run;
using testing::tmp_files;

using testing::read_text;

// Runs `action` in a forked child whose files cannot grow past `limit` bytes, and returns what it
// returned (or the exception it threw) as text. The tests run on one thread (test_main.cpp), so
// the child inherits no thread pool that fork would break, as long as this process has not run a
// backward pass on a machine with a GPU (autograd then starts a thread per device).
std::string in_child_with_file_size_limit(rlim_t limit, const std::function<std::string()>& action) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::signal(SIGXFSZ, SIG_IGN);  // else the first write past the limit kills the child
    const rlimit size{limit, limit};
    std::string result = ::setrlimit(RLIMIT_FSIZE, &size) == 0 ? "" : "setrlimit failed";
    ::alarm(300);  // never hang the suite
    if (result.empty()) {
      try {
        result = action();
      } catch (const Error& error) {
        result = error.argument() + " | " + error.problem();
      } catch (const std::exception& error) {
        result = std::string("exception: ") + error.what();
      }
    }
    (void)io::write_all(pipe_fds[1], result.data(), result.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string text;
  char buffer[4096];
  for (ssize_t got; (got = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) text.append(buffer, static_cast<size_t>(got));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child ended with status " << status;
  return text;
}

TEST(FileSizeLimit, ACheckpointThatCannotBeWrittenKeepsTheLastGoodOne) {
  ScratchFolder folder;
  const std::string out = folder.file("run");
  // The first run trains in a child too: once this process has run a backward pass on a machine
  // with a GPU, autograd's device threads exist and a forked child could not train any more.
  ASSERT_EQ(in_child_with_file_size_limit(RLIM_INFINITY, [&] {
              const bool finished = Trainer::start(testing::large_checkpoint_run(out), false).run().status ==
                                    TrainStatus::finished;
              return std::string(finished ? "finished" : "stopped");
            }),
            "finished");
  const std::vector<uint8_t> checkpoint = testing::read_bytes(out + "/checkpoint.pt");
  ASSERT_GT(checkpoint.size(), 150000u);
  // Room for config.json and metrics.csv, not for the checkpoint.
  const std::string message = in_child_with_file_size_limit(100 << 10, [&] {
    Trainer resumed = Trainer::resume(out, {4, std::nullopt});
    resumed.run();
    return std::string("no error");
  });
  EXPECT_EQ(message, "out_dir | cannot write '" + out + "/checkpoint.pt': File too large; the last good checkpoint "
                     "(step 2) is kept in " + out + "/checkpoint.pt");
  EXPECT_EQ(testing::read_bytes(out + "/checkpoint.pt"), checkpoint);
  EXPECT_TRUE(tmp_files(out).empty());
  EXPECT_EQ(SavedGenerator::load(out).step(), 2);
  // The rows logged past the checkpoint go at the next resume.
  Trainer again = Trainer::resume(out, {3, std::nullopt});
  EXPECT_EQ(again.step(), 2);
  ASSERT_EQ(again.run().status, TrainStatus::finished);
}

TEST(FileSizeLimit, AnArrayThatDoesNotFitLeavesNoFile) {
  ScratchFolder folder;
  const std::string path = folder.file("samples.npy");
  const std::string message = in_child_with_file_size_limit(100 << 10, [&] {
    io::NpyWriter writer(path, "float32", {100000, 2}, "out_dir");
    const std::vector<float> block(2000, 0.5f);
    for (int k = 0; k < 100; ++k) writer.append(block.data(), block.size());
    writer.finish();
    return std::string("no error");
  });
  EXPECT_EQ(message, "out_dir | cannot write '" + path + "': File too large");
  EXPECT_TRUE(std::filesystem::is_empty(folder.path()));
}

TEST(AtomicFile, APlantedLinkIsNeverFollowed) {
  ScratchFolder folder;
  const std::string victim = folder.file("victim"), path = folder.file("config.json");
  std::ofstream(victim) << "precious";
  // The temporary's old, guessable name, and the final name itself, as links to someone's file.
  std::filesystem::create_symlink(victim, path + ".tmp");
  io::write_file_atomically(path, std::string_view("{}\n"), "out_dir");
  EXPECT_EQ(read_text(victim), "precious");
  EXPECT_EQ(read_text(path), "{}\n");
  std::filesystem::remove(path);
  std::filesystem::create_symlink(victim, path);
  io::write_file_atomically(path, std::string_view("{}\n"), "out_dir");
  EXPECT_EQ(read_text(victim), "precious");
  EXPECT_FALSE(std::filesystem::is_symlink(path));  // the link was replaced, not written through
  EXPECT_EQ(read_text(path), "{}\n");
  // Appending to a link is refused rather than written through.
  std::filesystem::remove(path);
  std::filesystem::create_symlink(victim, path);
  EXPECT_THROW(io::append_to_file(path, "row\n", "out_dir"), Error);
  EXPECT_EQ(read_text(victim), "precious");
  EXPECT_EQ(tmp_files(folder.path()), std::vector<std::string>{path + ".tmp"});  // the planted link, untouched
}

TEST(AtomicFile, ADeviceOrFolderAtTheFinalNameIsRefusedNotReplaced) {
  ScratchFolder folder;
  const std::string sub = folder.file("sub");
  std::filesystem::create_directory(sub);
  EXPECT_THROW(io::write_file_atomically(sub, std::string_view("{}\n"), "out_dir"), Error);
  EXPECT_TRUE(std::filesystem::is_directory(sub));
  if (std::filesystem::exists("/dev/null")) {
    EXPECT_THROW(io::check_replaceable("/dev/null", "out", /*link_allowed=*/true), Error);
  }
  // A user's output named through a link is refused; a run folder's planted link is replaced (above).
  const std::string target = folder.file("target"), link = folder.file("link");
  std::ofstream(target) << "kept";
  std::filesystem::create_symlink(target, link);
  EXPECT_THROW(io::check_replaceable(link, "out", /*link_allowed=*/false), Error);
  EXPECT_NO_THROW(io::check_replaceable(link, "out", /*link_allowed=*/true));
  EXPECT_NO_THROW(io::check_replaceable(target, "out", /*link_allowed=*/false));
  EXPECT_NO_THROW(io::check_replaceable(folder.file("new"), "out", /*link_allowed=*/false));
  EXPECT_TRUE(io::same_file(link, target));
  EXPECT_TRUE(io::same_file(folder.file("new"), folder.path() + "/./new"));
  EXPECT_FALSE(io::same_file(folder.file("new"), target));
}

TEST(AtomicFile, AFailedWriteNamesTheFileAndLeavesNothing) {
  ScratchFolder folder;
  try {
    io::write_file_atomically(folder.file("missing/config.json"), std::string_view("x"), "out_dir");
    FAIL() << "writing into a missing folder should fail";
  } catch (const Error& error) {
    EXPECT_EQ(error.argument(), "out_dir");
    EXPECT_EQ(error.problem(), "cannot write '" + folder.file("missing/config.json") + "': No such file or directory");
  }
  EXPECT_TRUE(std::filesystem::is_empty(folder.path()));
  EXPECT_EQ(io::final_name_of_temporary("checkpoint.pt.0123abcd.tmp"), "checkpoint.pt");
  EXPECT_EQ(io::final_name_of_temporary("checkpoint.pt.tmp"), "");
  EXPECT_EQ(io::final_name_of_temporary("notes.0123abcz.tmp"), "");
}

TEST(NpyWriter, WritesFloat32AndFloat64ArraysNumPyReads) {
  ScratchFolder folder;
  const std::vector<double> values{0.5, -1.25, 3.0, 1e-3, 7.0, 2.5};
  for (const char* dtype : {"float32", "float64"}) {
    SCOPED_TRACE(dtype);
    const std::string path = folder.file(std::string(dtype) + ".npy");
    io::NpyWriter writer(path, dtype, {3, 2});
    writer.append(values.data(), 4);
    const std::vector<float> rest{7.0f, 2.5f};
    writer.append(rest.data(), rest.size());
    writer.finish();
    const io::Array array = io::read_npy(path);
    EXPECT_EQ(array.dtype, dtype);
    EXPECT_EQ(array.shape, (std::vector<int64_t>{3, 2}));
    for (size_t k = 0; k < values.size(); ++k) {
      EXPECT_EQ(array.values[k], std::string(dtype) == "float32" ? double(float(values[k])) : values[k]);
    }
    // The data starts at a multiple of 64 bytes, as NumPy aligns it.
    const size_t item = std::string(dtype) == "float32" ? 4 : 8;
    EXPECT_EQ((std::filesystem::file_size(path) - values.size() * item) % 64, 0u);
  }
  EXPECT_THROW(io::NpyWriter(folder.file("bad.npy"), "float32", {-1, 2}), Error);
  EXPECT_THROW(io::NpyWriter(folder.file("bad.npy"), "int8", {1}), Error);
  {
    io::NpyWriter abandoned(folder.file("abandoned.npy"), "float32", {2});
  }
  EXPECT_FALSE(io::path_exists(folder.file("abandoned.npy")));
  EXPECT_TRUE(tmp_files(folder.path()).empty());
}

}  // namespace
}  // namespace sinkhorn::gen
