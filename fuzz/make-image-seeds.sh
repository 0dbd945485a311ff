#!/usr/bin/env bash
# make-image-seeds.sh OUTDIR: tiny whole-disk images (< 100 KiB each) for the image_open fuzz target:
# mender-convert-like partition tables (MBR, GPT, MBR with an extended partition) whose root and
# data partitions hold 60 KiB ext4 filesystems (the smallest mke2fs makes) with an fstab and
# mender/device_type. They are generated images, so they are not committed (like every fixture):
# fuzz/run makes them afresh in BUILD/fuzz-seeds/image_open before each run.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: make-image-seeds.sh OUTDIR" >&2; exit 2; }
out=$1
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/root/etc" "$work/data/mender"
printf '/dev/mmcblk0p1 /uboot auto defaults 0 0\n/dev/mmcblk0p4 /data auto defaults,x-systemd.growfs 0 0\n' >"$work/root/etc/fstab"
echo "device_type=beaglebone" >"$work/data/mender/device_type"
ln -s /data/mender "$work/root/mender-link"
find "$work" -exec touch -h -d @1700000000 {} +

# ext4 TREE FILE [LABEL]: a 60 KiB ext4 holding TREE (1 KiB blocks, no journal, 16 inodes).
ext4() {
  rm -f "$2"
  truncate -s 60K "$2"
  E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 -b 1024 -N 16 -I 128 -m 0 \
    -O ^has_journal,^resize_inode,^flex_bg -U 11111111-2222-3333-4444-555555555555 \
    -E hash_seed=11111111-2222-3333-4444-555555555555 ${3:+-L "$3"} -d "$1" "$2" >/dev/null 2>&1
}

# put IMAGE FILE SECTOR: writes FILE into IMAGE at a 512-byte sector.
put() { dd if="$2" of="$1" bs=512 seek="$3" conv=notrunc status=none; }

ext4 "$work/root" "$work/root.ext4"
ext4 "$work/data" "$work/data.ext4"
ext4 "$work/data" "$work/data-labelled.ext4" data

# MBR, mender-convert order: p1 boot, p2 rootfs A, p3 rootfs B, p4 data. Each seed carries one
# 60 KiB ext4 (120 sectors) and 2-sector partitions without a filesystem elsewhere, to stay small.
# mbr IMAGE FS PARTITION: the four partitions with FS in PARTITION (2 or 4).
mbr() {
  local img=$1 fs=$2 number=$3 sizes=(2 2 2 2) start=2 table=""
  sizes[$((number - 1))]=120
  for i in 0 1 2 3; do
    table+="start=$start, size=${sizes[$i]}, type=$([ "$i" = 0 ] && echo c || echo 83)"$'\n'
    [ "$i" = $((number - 1)) ] && fs_start=$start
    start=$((start + sizes[i]))
  done
  rm -f "$img"; truncate -s $((start * 512)) "$img"
  printf 'label: dos\nlabel-id: 0x12345678\n%s' "$table" | sfdisk -q "$img" >/dev/null
  put "$img" "$fs" "$fs_start"
}
mbr "$out/mbr-root.img" "$work/root.ext4" 2
mbr "$out/mbr-data.img" "$work/data.ext4" 4

# GPT with a 4-entry table (one sector of entries keeps it small): p1 rootfs-like ext4 only.
img=$out/gpt-root.img
rm -f "$img"; truncate -s $(((3 + 120 + 2) * 512)) "$img"
sfdisk -q "$img" >/dev/null <<'T'
label: gpt
label-id: 01234567-89AB-CDEF-0123-456789ABCDEF
table-length: 4
first-lba: 3
start=3, size=120, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=11111111-0000-0000-0000-000000000001, name=primary
T
put "$img" "$work/root.ext4" 3

# mender-convert 1.x: labelled filesystems, p4 extended holding p5 data and p6 (swap type, empty).
img=$out/mbr-extended-labels.img
rm -f "$img"; truncate -s $((136 * 512)) "$img"
sfdisk -q "$img" >/dev/null <<'T'
label: dos
label-id: 0x0badcafe
start=2, size=2, type=c
start=4, size=2, type=83
start=6, size=2, type=83
start=8, size=128, type=5
start=10, size=120, type=83
start=132, size=2, type=82
T
put "$img" "$work/data-labelled.ext4" 10

# A bare filesystem without a partition table (refused: "no partition table found").
cp "$work/data.ext4" "$out/no-table.img"
