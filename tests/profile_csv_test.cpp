#include <gtest/gtest.h>

#include "imprint/profile/csv.hpp"
#include "imprint/core/error.hpp"
#include "support.hpp"

using namespace imprint;

namespace {

std::vector<DeviceRow> read_text(const test::TempDir& dir, const std::string& text) {
  test::write_file(dir / "devices.csv", text);
  return read_devices_csv(dir / "devices.csv");
}

std::string csv_error(const std::string& text) {
  test::TempDir dir;
  try {
    read_text(dir, text);
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Invalid) << error.what();
    std::string message = error.what();
    // Strip the temp directory so the tests can compare "devices.csv:<line>: ...".
    EXPECT_TRUE(message.starts_with(dir.path() + "/")) << message;
    return message.substr(dir.path().size() + 1);
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return "";
}

}  // namespace

TEST(ProfileCsv, PlainRowsWithColumns) {
  test::TempDir dir;
  const auto rows = read_text(dir, "device_id,site,scope\ndev-1,lab,s1\ndev-2,line,s2\n");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].line, 2);
  EXPECT_EQ(rows[0].device_id, "dev-1");
  EXPECT_EQ(rows[0].columns, (Variables{{"site", "lab"}, {"scope", "s1"}}));
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_EQ(rows[1].device_id, "dev-2");
  EXPECT_EQ(rows[1].columns, (Variables{{"site", "line"}, {"scope", "s2"}}));
}

TEST(ProfileCsv, QuotesCommasNewlinesAndCrlf) {
  test::TempDir dir;
  const auto rows = read_text(dir,
                              "\xEF\xBB\xBF" "site,device_id,note\r\n"
                              "\"a,b\",dev-1,\"say \"\"hi\"\"\"\r\n"
                              "lab,\"dev-2\",\"two\r\nlines\nhere\"\r\n"
                              "x,dev-3,\r\n"
                              "\r\n"
                              "y,dev-4,last");  // no final line end
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].device_id, "dev-1");
  EXPECT_EQ(rows[0].columns.at("site"), "a,b");
  EXPECT_EQ(rows[0].columns.at("note"), "say \"hi\"");
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_EQ(rows[1].device_id, "dev-2");
  EXPECT_EQ(rows[1].columns.at("note"), "two\r\nlines\nhere");
  EXPECT_EQ(rows[2].line, 6);  // the quoted newlines above count as lines
  EXPECT_EQ(rows[2].columns.at("note"), "");
  EXPECT_EQ(rows[3].line, 8);  // the blank line 7 is skipped
  EXPECT_EQ(rows[3].columns.at("note"), "last");
}

TEST(ProfileCsv, HeaderOnlyIsAnEmptyList) {
  test::TempDir dir;
  EXPECT_TRUE(read_text(dir, "device_id\n").empty());
  const auto rows = read_text(dir, "device_id\nonly\n");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].columns.empty());
}

TEST(ProfileCsv, Errors) {
  EXPECT_EQ(csv_error(""), "devices.csv:1: empty file (a header row with a device_id column is required)");
  EXPECT_EQ(csv_error("\n\r\n"), "devices.csv:1: empty file (a header row with a device_id column is required)");
  EXPECT_EQ(csv_error("id,site\na,b\n"), "devices.csv:1: header: no device_id column");
  EXPECT_EQ(csv_error("device_id,pfx-password\na,b\n"),
            "devices.csv:1: header: column 'pfx-password' is not a variable name (letters, digits, '_', not starting with a digit)");
  EXPECT_EQ(csv_error("device_id,site,site\na,b,c\n"), "devices.csv:1: header: column 'site' appears twice");
  EXPECT_EQ(csv_error("device_id,site\na,b\nc\n"), "devices.csv:3: 1 fields, but the header has 2");
  EXPECT_EQ(csv_error("device_id,site\na,b\nc,d,e\n"), "devices.csv:3: 3 fields, but the header has 2");
  EXPECT_EQ(csv_error("site,device_id\nlab,dev-1\nlab,\n"), "devices.csv:3: missing device_id");
  EXPECT_EQ(csv_error("device_id\ndev-1\ndev-2\n\"dev-1\"\n"), "devices.csv:4: duplicate device_id 'dev-1' (first on line 2)");
  EXPECT_EQ(csv_error("device_id,note\ndev-1,\"open\nstill open\n"), "devices.csv:2: a quoted field is not closed");
  EXPECT_EQ(csv_error("device_id,note\ndev-1,ab\"c\n"),
            "devices.csv:2: a quote inside an unquoted field (quote the whole field and double the quote: \"a\"\"b\")");
  EXPECT_EQ(csv_error("device_id,note\ndev-1,\"ab\"c\n"), "devices.csv:2: text after the closing quote of a field");
}

TEST(ProfileCsv, LineNumbersCountQuotedNewlinesForLaterErrors) {
  EXPECT_EQ(csv_error("device_id,note\ndev-1,\"a\nb\nc\"\ndev-1,x\n"), "devices.csv:5: duplicate device_id 'dev-1' (first on line 2)");
}

TEST(ProfileCsv, MissingFileIsNamed) {
  try {
    read_devices_csv("/nonexistent/devices.csv");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/devices.csv"), std::string::npos);
  }
}
