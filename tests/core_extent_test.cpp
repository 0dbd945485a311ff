// Extent arithmetic: merged, subtract, intersect, against a byte-by-byte model on random lists.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "imprint/core/extent.hpp"

namespace imprint {
namespace {

constexpr std::uint64_t kSpace = 200;

std::vector<bool> as_bits(const std::vector<Extent>& extents) {
  std::vector<bool> bits(kSpace, false);
  for (const Extent& extent : extents) {
    for (std::uint64_t i = extent.offset; i < extent.end(); ++i) bits[i] = true;
  }
  return bits;
}

std::vector<Extent> random_extents(std::mt19937& random) {
  std::vector<Extent> extents;
  const int count = static_cast<int>(random() % 8);
  for (int i = 0; i < count; ++i) {
    const std::uint64_t offset = random() % (kSpace - 20);
    extents.push_back(Extent{offset, random() % 20});
  }
  return extents;
}

// Sorted, disjoint, not touching, no empty extent.
void expect_canonical(const std::vector<Extent>& extents) {
  for (std::size_t i = 0; i < extents.size(); ++i) {
    EXPECT_GT(extents[i].length, 0u);
    if (i > 0) {
      EXPECT_GT(extents[i].offset, extents[i - 1].end());
    }
  }
}

TEST(Extents, MergeSubtractIntersectMatchAByteModel) {
  std::mt19937 random(20261201);
  for (int round = 0; round < 2000; ++round) {
    const auto a = random_extents(random);
    const auto b = random_extents(random);
    const auto bits_a = as_bits(a), bits_b = as_bits(b);
    const auto merged_a = merged(a);
    const auto difference = subtract(a, b);
    const auto common = intersect(a, b);
    expect_canonical(merged_a);
    expect_canonical(difference);
    expect_canonical(common);
    const auto bits_merged = as_bits(merged_a), bits_difference = as_bits(difference), bits_common = as_bits(common);
    for (std::uint64_t i = 0; i < kSpace; ++i) {
      ASSERT_EQ(bits_merged[i], bits_a[i]) << "round " << round << " byte " << i;
      ASSERT_EQ(bits_difference[i], bits_a[i] && !bits_b[i]) << "round " << round << " byte " << i;
      ASSERT_EQ(bits_common[i], bits_a[i] && bits_b[i]) << "round " << round << " byte " << i;
    }
  }
}

TEST(Extents, TouchingExtentsMergeIntoOne) {
  const auto result = merged({Extent{10, 5}, Extent{0, 10}, Extent{15, 0}, Extent{15, 1}});
  ASSERT_EQ(result.size(), 1u);
  EXPECT_EQ(result[0], (Extent{0, 16}));
}

}  // namespace
}  // namespace imprint
