#!/usr/bin/env bash
# golden.sh SIZE_GIB OUT.img: a mender-convert-like golden image for the benchmark (not a test
# fixture): MBR, vfat boot at 8 MiB (16 MiB), rootfs A and B (the same ext4 written twice, as
# mender-convert does) holding the fixture root tree plus real files copied from this machine,
# data ext4 (128 MiB, mender-convert's default) with mender/mender.conf and mender/device_type,
# an 8 MiB tail. The rootfs content is REAL_MIB_PER_GIB MiB of real files per GiB of image.
# No root needed. Sparse. Rebuilt only when missing (bench/run checks this script's checksum).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fixtures=$here/../fixtures
# shellcheck source=../fixtures/lib.sh
. "$fixtures/lib.sh"
# shellcheck source=../fixtures/trees.sh
. "$fixtures/trees.sh"

[ $# -eq 2 ] || die "usage: golden.sh SIZE_GIB OUT.img"
size_gib=$1 out=$2
[[ $size_gib =~ ^[1-9][0-9]*$ ]] || die "golden.sh: SIZE_GIB must be a whole number, got '$size_gib'"
need mke2fs e2fsck mkfs.vfat mcopy sfdisk fallocate dd truncate install tar

REAL_MIB_PER_GIB=300      # 1 GiB image: 300 MiB of real files per rootfs; 4 GiB image: 1200 MiB
BOOT_MIB=16 DATA_MIB=128 TAIL_MIB=8 MIB=1048576 SECTORS_PER_MIB=2048
# Real trees of this machine, taken in this order (files sorted by path) until the budget is spent.
REAL_TREES=(/usr/share/doc /usr/lib/x86_64-linux-gnu /usr/bin /usr/share)

total_mib=$((size_gib * 1024))
# mender-convert: rootfs size = what is left, halved, rounded down to the 8 MiB alignment.
rootfs_mib=$(( (total_mib - 8 - BOOT_MIB - DATA_MIB - TAIL_MIB) / 2 / 8 * 8 ))
a=$((8 + BOOT_MIB)) b=$((8 + BOOT_MIB + rootfs_mib)) d=$((8 + BOOT_MIB + 2 * rootfs_mib))
budget=$((size_gib * REAL_MIB_PER_GIB * MIB))

mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$(dirname "$out")/.golden.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022
export LC_ALL=C TZ=UTC MTOOLS_SKIP_CHECK=1

# ---- trees ---------------------------------------------------------------------------------------
make_rootfs_tree "$work/rootfs" mbr
make_data_tree "$work/data"
make_boot_files "$work/boot"

# The budget of real files: regular files and symlinks, sorted by path, until `budget` bytes; a
# file counts once (trees overlap; hard links such as Mesa's drivers share one inode).
for tree in "${REAL_TREES[@]}"; do
  [ -d "$tree" ] && find "$tree" \( -type f -o -type l \) -printf '%s\t%i\t%p\n' | sort -t$'\t' -k3,3
done | awk -F'\t' -v budget="$budget" '!seen[$3]++ && !inode[$2]++ { if (sum >= budget) next; sum += $1; print substr($3, 2) }' \
  >"$work/real.list"
# Missing parents are created by tar; a file that vanished meanwhile is skipped (the size is checked).
tar -C / -cf - --no-recursion -T "$work/real.list" 2>/dev/null | tar -C "$work/rootfs" -xf - 2>/dev/null || true
real=$(du -sm "$work/rootfs" | cut -f1)
[ "$real" -ge $((budget / MIB / 2)) ] || die "golden.sh: only $real MiB of real files copied (wanted $((budget / MIB)))"

# ---- filesystems ---------------------------------------------------------------------------------
truncate -s "${BOOT_MIB}M" "$work/boot.fs"
run mkfs.vfat -h $((8 * SECTORS_PER_MIB)) "$work/boot.fs"
run mcopy -m -i "$work/boot.fs" "$work/boot/uEnv.txt" "$work/boot/zImage" ::/
truncate -s "${rootfs_mib}M" "$work/rootfs.fs"
run mke2fs -q -F -t ext4 -b 4096 -d "$work/rootfs" "$work/rootfs.fs"
run e2fsck -fn "$work/rootfs.fs"
rm -rf "$work/rootfs"
truncate -s "${DATA_MIB}M" "$work/data.fs"
run mke2fs -q -F -t ext4 -b 4096 -d "$work/data" "$work/data.fs"
run e2fsck -fn "$work/data.fs"

# ---- disk ----------------------------------------------------------------------------------------
img=$work/golden.img
truncate -s "${total_mib}M" "$img"
{
  printf 'label: dos\nunit: sectors\nsector-size: 512\n\n'
  printf 'start=%d, size=%d, type=c, bootable\n' $((8 * SECTORS_PER_MIB)) $((BOOT_MIB * SECTORS_PER_MIB))
  printf 'start=%d, size=%d, type=83\n' $((a * SECTORS_PER_MIB)) $((rootfs_mib * SECTORS_PER_MIB))
  printf 'start=%d, size=%d, type=83\n' $((b * SECTORS_PER_MIB)) $((rootfs_mib * SECTORS_PER_MIB))
  printf 'start=%d, size=%d, type=83\n' $((d * SECTORS_PER_MIB)) $((DATA_MIB * SECTORS_PER_MIB))
} | run sfdisk --no-reread --no-tell-kernel --wipe never --wipe-partitions never "$img"
for item in 8:boot.fs "$a:rootfs.fs" "$b:rootfs.fs" "$d:data.fs"; do
  run dd if="$work/${item#*:}" of="$img" bs=$MIB seek="${item%%:*}" conv=notrunc,sparse status=none
done
run fallocate --dig-holes "$img"
mv -f "$img" "$out"
echo "golden.sh: $out: ${size_gib} GiB, rootfs ${rootfs_mib} MiB x2 with $real MiB of files each, data ${DATA_MIB} MiB," \
  "$(du -m "$out" | cut -f1) MiB allocated"
