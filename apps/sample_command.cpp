// sinkhorn sample: draws from a trained generator saved by `sinkhorn train`.
#include <ATen/ATen.h>

#include "arguments.h"
#include "cli.h"
#include "gen/sample_pictures.h"
#include "gen/saved_generator.h"
#include "io/atomic_file.h"
#include "util/check.h"
#include "util/strings.h"

namespace sinkhorn::cli {

int sample_command(const std::vector<std::string>& arguments, std::ostream& out, std::ostream& err) {
  ArgumentParser parser("sinkhorn sample --checkpoint C --out FILE [options]",
                        "Draws samples from a generator trained by `sinkhorn train` and writes them as a picture\n"
                        "(.png: an image grid, or a scatter plot for 2-D data) or an array (.npy: n x sample shape,\n"
                        "written a batch at a time). The checkpoint is verified first (CRC-32 of every entry, finite weights).");
  parser.option("checkpoint", "C", "checkpoint.pt, or the run folder holding it")
      .option("out", "FILE", "output .png or .npy")
      .integer("n", "N", "number of samples (default 64)", 1, kMaxSamples)
      .integer("seed", "S", "seed of the latent draws (default 0)", 0, kMaxSeed)
      .integer("lattice", "R", "2-D latent only: decode an R x R lattice of the latent square instead (.png)", 2, 100)
      .integer("threads", "N", "CPU threads (default: every core)", 0, kMaxThreads)
      .option("device", "NAME", "cpu (default) or cuda[:K]: where the generator runs (any run's checkpoint loads on either)");
  const std::optional<ParsedArguments> parsed = parse_command(parser, arguments, out);
  if (!parsed) return 0;  // --help
  const ParsedArguments& args = *parsed;
  const std::optional<std::string> checkpoint = args.value("checkpoint");
  const std::optional<std::string> output = args.value("out");
  SINKHORN_CHECK(checkpoint, "--checkpoint is required (a checkpoint.pt or a run folder)");
  SINKHORN_CHECK(output, "--out is required (a .png or .npy file)");
  SINKHORN_CHECK(ends_with(*output, ".png") || ends_with(*output, ".npy"),
                 "--out must end in .png or .npy, got '" << *output << "'");
  io::check_replaceable(*output, "out", /*link_allowed=*/false);
  SINKHORN_CHECK(!io::same_file(*output, *checkpoint), "--out (" << *output << ") is the checkpoint; give another file");
  const long long seed = args.integer("seed").value_or(0);
  const at::Device device = device_from(args);

  gen::SavedGenerator generator = gen::SavedGenerator::load(*checkpoint, device);
  if (const auto rows = args.integer("lattice")) {
    SINKHORN_CHECK(ends_with(*output, ".png"), "--lattice writes a picture: --out must end in .png");
    SINKHORN_CHECK(generator.config().generator.sample_shape.size() == 3,
                   "--lattice needs a generator of images; this one makes 2-D points");
    gen::write_lattice_picture(*output, generator.decode_lattice(*rows), *rows);
    out << "wrote the " << *rows << " x " << *rows << " latent lattice to " << *output << "\n";
    return 0;
  }
  const int64_t n = args.integer("n").value_or(64);
  if (ends_with(*output, ".png")) {
    // Refused before generating anything: a picture has room for so many samples.
    gen::check_picture_room(n, generator.config().generator.sample_shape.size() == 3, "n");
    gen::write_samples_picture(*output, generator.sample(n, static_cast<uint64_t>(seed)));
  } else {
    gen::write_samples_npy(generator, *output, n, static_cast<uint64_t>(seed));
  }
  out << "wrote " << n << " samples of the generator at step " << generator.step() << " to " << *output << "\n";
  return 0;
}

}  // namespace sinkhorn::cli
