// The card's identity: a loop device is its backing file (and its size), which is the card's own
// identity, so reconciliation may write its id onto it again; a card known only by its reader
// (ID_SERIAL / ID_PATH) never matches, nor does one of another size or CID.
#include <gtest/gtest.h>

#include "imprint/core/error.hpp"
#include "imprint/station/station.hpp"
#include "support.hpp"

using namespace imprint::test;
using imprint::CardIdentity;

namespace {

TEST(StationCard, LoopDeviceIsItsBackingFileAndSize) {
  TempDir dir;
  const std::string file = dir / "card.img";
  shell("truncate -s 8M '" + file + "'");
  const CommandResult attached = run({"losetup", "--find", "--show", file});
  ASSERT_EQ(attached.status, 0) << "this test needs root and a free loop device (losetup): " << attached.err;
  const std::string device = attached.out.substr(0, attached.out.find('\n'));
  const CardIdentity card = imprint::card_identity(device);
  run({"losetup", "-d", device});
  EXPECT_EQ(card.serial, "loop:" + file);
  EXPECT_EQ(card.size, 8u * 1024 * 1024);
  EXPECT_EQ(card.devnode, device);
  EXPECT_TRUE(card.cid.empty());
  EXPECT_TRUE(imprint::identifies_the_card(card));
  EXPECT_EQ(imprint::to_json(card).at("serial"), "loop:" + file);
}

TEST(StationCard, OnlyTheCardsOwnIdentityMatches) {
  CardIdentity sd;
  sd.cid = "035344534331364780a1b2c3d4012345";
  sd.size = 16000000000;
  CardIdentity same_sd = sd;
  same_sd.devnode = "/dev/mmcblk1";  // another reader: still the same card
  EXPECT_TRUE(imprint::same_card(sd, same_sd));
  CardIdentity other_sd = sd;
  other_sd.cid[31] = '6';
  EXPECT_FALSE(imprint::same_card(sd, other_sd));
  CardIdentity resized = sd;
  resized.size = 32000000000;
  EXPECT_FALSE(imprint::same_card(sd, resized));

  CardIdentity reader;
  reader.serial = "Generic_STORAGE_DEVICE_000000001206-0:0";
  reader.path = "pci-0000:00:14.0-usb-0:3:1.0-scsi-0:0:0:0";
  reader.size = 16000000000;
  EXPECT_FALSE(imprint::identifies_the_card(reader));
  EXPECT_FALSE(imprint::same_card(reader, reader));  // the card in that reader may have been swapped
}

TEST(StationCard, NotABlockDeviceIsAnError) {
  TempDir dir;
  write_file(dir / "file", "x");
  expect_error([&] { imprint::card_identity(dir / "file"); }, imprint::ErrorCode::Invalid);
}

}  // namespace
