// The station's status page as an operator's browser sees it: loaded in headless Chromium (Debian
// chromium) from any URL (a test's own StatusServer, or a real station run), its screenshot decoded
// with python3-pil and its DOM compared with what GET /api/status reports (fetched with curl).
#pragma once

#include <unistd.h>

#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support.hpp"

namespace imprint::test {

struct StatusPageCapture {
  nlohmann::json api;      // GET <url>api/status
  std::string dom;         // the page's DOM after load (chromium --dump-dom)
  std::string screenshot;  // PNG file (chromium --screenshot)
};

inline std::vector<std::string> chromium_arguments(const TempDir& dir) {
  std::vector<std::string> arguments = {"chromium", "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                                        "--disable-dev-shm-usage", "--user-data-dir=" + dir / "chromium-profile", "--window-size=1200,800"};
  if (::geteuid() == 0) arguments.push_back("--no-sandbox");  // Chromium refuses to run as root with its sandbox
  return arguments;
}

// url: the page, ending in '/' ("http://127.0.0.1:PORT/").
inline StatusPageCapture capture_status_page(const std::string& url, const TempDir& dir) {
  StatusPageCapture capture;
  const auto api = run({"curl", "--silent", "--show-error", "--fail", "--max-time", "20", url + "api/status"});
  EXPECT_EQ(api.status, 0) << "curl " << url << "api/status: " << api.err;
  capture.api = nlohmann::json::parse(api.out, nullptr, false);
  EXPECT_FALSE(capture.api.is_discarded()) << "GET /api/status is not JSON: " << api.out;

  const auto chromium = [&](const std::string& action) {
    std::vector<std::string> arguments = {"timeout", "120"};
    for (std::string& argument : chromium_arguments(dir)) arguments.push_back(std::move(argument));
    arguments.push_back(action);
    arguments.push_back(url);
    const auto result = run(arguments);
    EXPECT_EQ(result.status, 0) << "chromium (Debian chromium) " << action << " " << url << ": " << result.err;
    return result;
  };
  capture.screenshot = dir / "status-page.png";
  chromium("--screenshot=" + capture.screenshot);
  const auto dom = chromium("--dump-dom");
  capture.dom = dom.out;
  return capture;
}

// A PNG of the window's size that shows something: more than a few colours, and at least 1 % of its
// pixels other than the background's (the most common colour). Decoded by python3-pil.
inline void expect_png_not_blank(const std::string& path, int width, int height) {
  const std::string script =
      "import sys\n"
      "from PIL import Image\n"
      "image = Image.open(sys.argv[1])\n"
      "image.load()\n"
      "colours = image.convert('RGB').getcolors(maxcolors=1 << 24)\n"
      "background = max(count for count, colour in colours)\n"
      "total = image.size[0] * image.size[1]\n"
      "print(image.format, image.size[0], image.size[1], len(colours), (total - background) / total)\n";
  const auto decoded = run({"/usr/bin/python3", "-c", script, path});
  ASSERT_EQ(decoded.status, 0) << "python3 with PIL (Debian python3-pil) cannot decode " << path << ": " << decoded.err;
  std::istringstream fields(decoded.out);
  std::string format;
  int decoded_width = 0, decoded_height = 0;
  std::size_t colours = 0;
  double drawn = 0;
  fields >> format >> decoded_width >> decoded_height >> colours >> drawn;
  EXPECT_EQ(format, "PNG") << decoded.out;
  EXPECT_EQ(decoded_width, width) << decoded.out;
  EXPECT_EQ(decoded_height, height) << decoded.out;
  EXPECT_GE(colours, 8u) << "a blank or nearly blank screenshot: " << decoded.out;
  EXPECT_GE(drawn, 0.01) << "a blank or nearly blank screenshot: " << decoded.out;
}

// How a DOM serialisation writes text.
inline std::string dom_text(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else out += c;
  }
  return out;
}

// Every device id /api/status reports is a text of the DOM, one slot row per slot.
inline void expect_dom_shows_the_api_slots(const StatusPageCapture& capture) {
  ASSERT_TRUE(capture.api.contains("slots")) << capture.api.dump();
  for (const auto& slot : capture.api["slots"]) {
    const std::string device_id = slot["device_id"];
    if (device_id.empty()) continue;
    EXPECT_NE(capture.dom.find(">" + dom_text(device_id) + "<"), std::string::npos)
        << "device " << device_id << " of /api/status is not in the page's DOM:\n" << capture.dom;
  }
  std::size_t rows = 0;
  for (std::size_t at = capture.dom.find("<tr class=\"slot\">"); at != std::string::npos; at = capture.dom.find("<tr class=\"slot\">", at + 1)) ++rows;
  EXPECT_EQ(rows, capture.api["slots"].size()) << capture.dom;
}

}  // namespace imprint::test
