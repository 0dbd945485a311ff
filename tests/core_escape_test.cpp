// escape_control: what untrusted bytes look like once they reach a terminal.
#include <gtest/gtest.h>

#include "imprint/core/bytes.hpp"

using imprint::escape_control;

TEST(EscapeControl, ControlCharactersBecomeVisibleEscapes) {
  EXPECT_EQ(escape_control("dev\nx"), "dev\\nx");
  EXPECT_EQ(escape_control("a\rb\tc"), "a\\rb\\tc");
  EXPECT_EQ(escape_control("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
  EXPECT_EQ(escape_control(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(escape_control("del\x7f"), "del\\x7f");
}

TEST(EscapeControl, C1ControlsAndInvalidUtf8AreEscapedBytewise) {
  EXPECT_EQ(escape_control("csi\xc2\x9b" "31m"), "csi\\xc2\\x9b31m");  // U+009B, the 8-bit CSI
  EXPECT_EQ(escape_control("bad\xff\xfe"), "bad\\xff\\xfe");
  EXPECT_EQ(escape_control("overlong\xc0\xaf"), "overlong\\xc0\\xaf");
  EXPECT_EQ(escape_control("surrogate\xed\xa0\x80"), "surrogate\\xed\\xa0\\x80");
  EXPECT_EQ(escape_control("cut\xe2\x82"), "cut\\xe2\\x82");
}

TEST(EscapeControl, PrintableTextAndValidUtf8AreUnchanged) {
  EXPECT_EQ(escape_control("devices.csv:3: device dev-01: ok"), "devices.csv:3: device dev-01: ok");
  EXPECT_EQ(escape_control("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xc2\xa0"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xc2\xa0");
  EXPECT_EQ(escape_control(""), "");
}
