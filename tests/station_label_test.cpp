// Station labels: the SVG (rendered by librsvg, its QR code read back by zbar) and the operator's
// print command, run without a shell.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>

#include <gtest/gtest.h>

#include "imprint/core/error.hpp"
#include "imprint/station/label.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::run;
using test::TempDir;

// The label rendered to PNG by a real SVG renderer, then its QR code decoded by zbarimg.
std::string decode_label(const std::string& svg_path, const TempDir& dir) {
  const std::string png = dir / "label.png";
  const auto rendered = run({"rsvg-convert", "--width", "700", "--background-color", "white", "-o", png, svg_path});
  EXPECT_EQ(rendered.status, 0) << "rsvg-convert (Debian librsvg2-bin) could not render " << svg_path << ": " << rendered.err;
  const auto decoded = run({"zbarimg", "--quiet", "--raw", "-Sbinary", png});
  EXPECT_EQ(decoded.status, 0) << "zbarimg (Debian zbar-tools) found no QR code in " << png << ": " << decoded.err;
  std::string text = decoded.out;
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

TEST(StationLabel, TheQrCodeDecodesToTheDeviceId) {
  for (const std::string device_id : {"dev-0042", "ACME-2026-12-000001-rev-b-line-3-slot-7-serial-0123456789abcdef",
                                      "a&b<c>\"q' \xc3\xa4\xc3\xb6"}) {
    TempDir dir;
    const std::string path = write_label_svg(dir / "labels", {device_id, "0a:1b:2c:3d:4e:5f:60:71:82:93", "2026-12-01"});
    EXPECT_EQ(path, dir / "labels/" + device_id + ".svg");
    EXPECT_EQ(decode_label(path, dir), device_id);
  }
}

TEST(StationLabel, TheTextShowsTheIdTheShortThumbprintAndTheDate) {
  const std::string svg = label_svg({"a&b<c>", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "2026-12-01"});
  EXPECT_NE(svg.find(">a&amp;b&lt;c&gt;</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">cert 0A1B 2C3D 4E5F 6071</text>"), std::string::npos) << svg;
  EXPECT_EQ(svg.find("8293"), std::string::npos) << "the thumbprint is shortened to 16 digits";
  EXPECT_NE(svg.find(">2026-12-01</text>"), std::string::npos);
  // Without a certificate there is no thumbprint line; without a date, today's (SOURCE_DATE_EPOCH).
  ::setenv("SOURCE_DATE_EPOCH", "1764547200", 1);  // 2025-12-01T00:00:00Z
  const std::string bare = label_svg({"dev-1", "", ""});
  ::unsetenv("SOURCE_DATE_EPOCH");
  EXPECT_EQ(bare.find("cert "), std::string::npos);
  EXPECT_NE(bare.find(">2025-12-01</text>"), std::string::npos) << bare;
}

TEST(StationLabel, FromAFlashRecord) {
  const auto record = nlohmann::ordered_json::parse(
      R"({"device_id": "dev-9", "credentials": {"sha1_thumbprint": "ABCDEF0123456789FFFF", "sha256_thumbprint": "00"}})");
  const LabelData label = label_for_record(record);
  EXPECT_EQ(label.device_id, "dev-9");
  EXPECT_EQ(label.cert_thumbprint, "ABCDEF0123456789FFFF");
  EXPECT_EQ(label.date, "");
  const LabelData without = label_for_record(nlohmann::ordered_json::parse(R"({"device_id": "dev-9", "credentials": null})"));
  EXPECT_EQ(without.cert_thumbprint, "");
}

TEST(StationLabel, ControlCharactersNeverReachTheSvg) {
  const std::string svg = label_svg({"dev\x1b[2J", "", "2026\x07"});
  EXPECT_EQ(svg.find('\x1b'), std::string::npos);
  EXPECT_EQ(svg.find('\x07'), std::string::npos);
  EXPECT_NE(svg.find("dev\\x1b[2J"), std::string::npos);
}

TEST(StationLabel, WrittenCompleteUnderItsNameOnlyAndReadableByTheSpooler) {
  TempDir dir;
  const std::string path = write_label_svg(dir.path(), {"dev-7", "", "2026-12-01"});
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1u) << "no temp file left beside the label";
  EXPECT_EQ(test::read_file(path), label_svg({"dev-7", "", "2026-12-01"}));
}

TEST(StationLabel, ADeviceIdThatCannotNameAFileIsRefusedAndNothingIsWritten) {
  TempDir dir;
  for (const std::string device_id : {"../escape", "a/b", "..", ""}) {
    test::expect_error([&] { write_label_svg(dir.path(), {device_id, "", "2026-12-01"}); }, ErrorCode::Invalid);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  EXPECT_FALSE(std::filesystem::exists(dir / "../escape.svg"));
}

TEST(StationLabelCommand, WordsSplitLikeAShellAndThePathIsOneArgumentWhateverItHolds) {
  const LabelCommand command("lp -d 'office printer' -t \"label \\\"{}\\\"\" back\\ slash {}");
  EXPECT_EQ(command.arguments_for("/l/x y.svg"),
            (std::vector<std::string>{"lp", "-d", "office printer", "-t", "label \"/l/x y.svg\"", "back slash", "/l/x y.svg"}));
}

TEST(StationLabelCommand, ThePathIsNeverParsedByAShell) {
  TempDir dir;
  // A directory name a shell would run: if anything parsed it, `pwned` would appear.
  const std::string hostile = dir / "a b;touch pwned;$(touch pwned2)'\"";
  const std::string path = write_label_svg(hostile, {"dev-1", "", "2026-12-01"});
  const LabelCommand command("cp {} " + dir.path() + "/copy.svg");
  EXPECT_EQ(command.run(path), "");
  EXPECT_EQ(test::read_file(dir / "copy.svg"), test::read_file(path));
  EXPECT_FALSE(std::filesystem::exists("pwned"));
  EXPECT_FALSE(std::filesystem::exists(dir / "pwned"));
  EXPECT_FALSE(std::filesystem::exists("pwned2"));
}

TEST(StationLabelCommand, AFailingCommandIsOneWarningLineNamingItsStatusAndOutput) {
  const std::string failed = LabelCommand("sh -c 'echo lp: no such printer >&2; echo more; exit 3' sh {}").run("/l/dev.svg");
  EXPECT_EQ(failed, "label command 'sh -c 'echo lp: no such printer >&2; echo more; exit 3' sh {}' for /l/dev.svg: exit status 3: "
                    "lp: no such printer");
  const std::string missing = LabelCommand("no-such-printer-command-xyz {}").run("/l/dev.svg");
  EXPECT_NE(missing.find("cannot run no-such-printer-command-xyz: No such file or directory"), std::string::npos) << missing;
  const std::string hostile = LabelCommand("sh -c 'printf \"x\\033[2J\\ny\"; exit 1' sh {}").run("/l/dev.svg");
  EXPECT_EQ(hostile.find('\x1b'), std::string::npos) << "the command's output is escaped";
  EXPECT_EQ(hostile.find('\n'), std::string::npos);
}

TEST(StationLabelCommand, AHangingCommandIsKilledAtTheTimeoutWithItsChildren) {
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  // The shell starts a background child that would outlive it and touch a file: the whole process
  // group goes at the timeout.
  const std::string warning =
      LabelCommand("sh -c '(sleep 2; touch " + dir.path() + "/late) & sleep 30' sh {}").run("/l/dev.svg", std::chrono::milliseconds(300));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.5);
  EXPECT_NE(warning.find("killed after 0.3 s (timeout)"), std::string::npos) << warning;
  ::sleep(3);
  EXPECT_FALSE(std::filesystem::exists(dir / "late"));
}

TEST(StationLabelCommand, TheCommandGetsDefaultSignalsWhateverTheStationsThreadBlocks) {
  // A station thread may block SIGTERM (to sigwait for it); the command must still die of it.
  sigset_t term, previous;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &previous), 0);
  const std::string warning = LabelCommand("sh -c 'kill -TERM $$; sleep 5' sh {}").run("/l/dev.svg", std::chrono::seconds(4));
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  EXPECT_NE(warning.find("killed by signal 15"), std::string::npos) << warning;
}

TEST(StationLabelCommand, BadCommandLinesAreRefusedWhenTheStationStarts) {
  const auto unbalanced = test::expect_error([] { LabelCommand("lp -d 'printer {}"); }, ErrorCode::Invalid);
  EXPECT_STREQ(unbalanced.what(), "--label-cmd 'lp -d 'printer {}': unbalanced ' quote");
  test::expect_error([] { LabelCommand("lp \"x {}"); }, ErrorCode::Invalid);
  test::expect_error([] { LabelCommand("   "); }, ErrorCode::Invalid);
  const auto no_path = test::expect_error([] { LabelCommand("lp -d printer"); }, ErrorCode::Invalid);
  EXPECT_STREQ(no_path.what(), "--label-cmd 'lp -d printer' has no {} where the label's path goes");
}

}  // namespace
}  // namespace imprint
