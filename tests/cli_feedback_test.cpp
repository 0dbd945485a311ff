// Feedback while imprint works (issue 15): flash's progress lines on a terminal (bytes, MiB/s,
// ETA) and none without one, --quiet and --verbose before or after the command. Terminals are
// real pseudo-terminals (script(1)); stamp's and batch's feedback is tested beside their other
// tests (cli_stamp_test, cli_batch_test).
#include <gtest/gtest.h>

#include "support.hpp"

using namespace imprint::test;

namespace {

TEST(Feedback, FlashShowsWritingAndVerifyingOnATerminalOnly) {
  TempDir dir;
  const std::string image = fixture("mbr.img");
  const std::string card = dir / "card.img";
  const CommandResult tty = run_imprint_on_terminal({"flash", image, "--target", card, "--device", "feedback-1"});
  ASSERT_EQ(tty.status, 0) << tty.out;
  // The first draw of each phase comes at once: its share of the total is known from the start.
  EXPECT_NE(tty.out.find("\rimprint: writing " + card + ": 0.0 of "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("\rimprint: wrote " + card + ": "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("\rimprint: reading back " + card + ": 0.0 of "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("\rimprint: read back " + card + ": "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find(" MiB/s"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("feedback-1: " + card + ": "), std::string::npos) << "the result line follows: " << tty.out;

  const std::string again = dir / "again.img";
  const CommandResult plain = run_imprint({"flash", image, "--target", again, "--device", "feedback-1"});
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.err, "");
  EXPECT_EQ(plain.out.find('\r'), std::string::npos) << plain.out;
  EXPECT_EQ(plain.out.rfind("feedback-1: " + again + ": ", 0), 0u) << plain.out;
}

TEST(Feedback, QuietPrintsNothingOnSuccessEvenOnATerminal) {
  TempDir dir;
  const std::string card = dir / "card.img";
  const CommandResult after = run_imprint_on_terminal({"flash", fixture("mbr.img"), "--target", card, "--quiet"});
  ASSERT_EQ(after.status, 0) << after.out;
  EXPECT_EQ(after.out, "");
  // Before the command too; an error still prints (here: the target exists, no --force).
  const CommandResult before = run_imprint({"-q", "flash", fixture("mbr.img"), "--target", card});
  EXPECT_EQ(before.status, 1);
  EXPECT_EQ(before.out, "");
  EXPECT_NE(before.err.find("imprint: "), std::string::npos) << before.err;
}

TEST(Feedback, VerboseSaysWhatEachStepDoesOnStderr) {
  TempDir dir;
  const std::string card = dir / "card.img";
  const CommandResult result = run_imprint({"--verbose", "flash", fixture("mbr.img"), "--target", card});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.err.find("imprint: " + card + ": opened for writing (new file); "), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("imprint: " + card + ": wrote "), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(" bytes, synced; reading it back\n"), std::string::npos) << result.err;
  EXPECT_EQ(result.out.find("imprint: "), std::string::npos) << "notes stay off stdout: " << result.out;

  const CommandResult both = run_imprint({"flash", fixture("mbr.img"), "--target", dir / "x.img", "-q", "-v"});
  EXPECT_EQ(both.status, 2) << "--quiet and --verbose exclude each other: " << both.err;
}

}  // namespace
