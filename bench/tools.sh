# The benchmarked ways of writing the same four files into a copy of a golden image (sourced by
# bench/run, not run). Each tool_NAME GOLDEN OUT leaves OUT as the finished, durable device image:
#   device key  -> data   /mender/mender-agent.pem                              0600
#   PFX         -> data   /mender/mender-certificate.pfx                        0600
#   identity    -> rootfs A and B /usr/share/mender/identity/mender-device-identity  0755
#   DPS client  -> rootfs A and B /usr/bin/prov_dev_client_bbb                   0755
# Like with like: imprint fsyncs its output (PendingFile::commit), so every row ends with
# `sync OUT` (coreutils: fsync of that one file); for imprint it finds nothing left to write.
# Inputs come from the environment bench/run exports: IMPRINT, PROFILE, DEVICE, KEY_PEM (PKCS#8, the
# profile converts it), KEY_PKCS1 (the same key as PKCS#1: the bytes imprint writes), CERT_PEM,
# PFX, IDENTITY (the identity script imprint renders for DEVICE), CLIENT (armhf ELF).
# shellcheck shell=bash

# (b) the floor: a sparse copy, made durable.
tool_floor() {
  cp --sparse=always "$1" "$2"
  sync "$2"
}

imprint_stamp() {  # imprint_stamp GOLDEN OUT [EXTRA...]
  local golden=$1 out=$2
  shift 2
  "$IMPRINT" stamp -p "$PROFILE" -i "$golden" --device "$DEVICE" -o "$out" --force \
    --set "key_file=$KEY_PEM" --set "cert_file=$CERT_PEM" --set "pfx_file=$PFX" --set "dps_client=$CLIENT" "$@"
}

# (a) imprint stamp, native ext4 backend (libext2fs, partitions opened in place).
tool_imprint() {
  imprint_stamp "$1" "$2"
  sync "$2"
}

# (e) imprint stamp through its libguestfs backend.
tool_imprint_guestfs() {
  imprint_stamp "$1" "$2" --backend guestfs
  sync "$2"
}

# (c) mender-artifact 3.9: one call per file (a /usr path goes to both root filesystems in one call).
# It reads -m as DECIMAL (`-m 600` gives 0130): 384 is 0600, 493 is 0755.
tool_mender_artifact() {
  cp --sparse=always "$1" "$2"
  mender-artifact install -m 384 "$KEY_PKCS1" "$2:/data/mender/mender-agent.pem"
  mender-artifact install -m 384 "$PFX" "$2:/data/mender/mender-certificate.pfx"
  mender-artifact install -m 493 "$IDENTITY" "$2:/usr/share/mender/identity/mender-device-identity"
  mender-artifact install -m 493 "$CLIENT" "$2:/usr/bin/prov_dev_client_bbb"
  sync "$2"
}

# (d) guestfish: one appliance launch for all writes, partitions mounted by device name.
# KVM aborts on these machines, so the appliance runs under TCG (REFERENCE.md).
tool_guestfish() {
  cp --sparse=always "$1" "$2"
  local rootfs
  {
    echo "run"
    echo "mount /dev/sda4 /"
    echo "upload $KEY_PKCS1 /mender/mender-agent.pem"
    echo "chmod 0600 /mender/mender-agent.pem"
    echo "upload $PFX /mender/mender-certificate.pfx"
    echo "chmod 0600 /mender/mender-certificate.pfx"
    echo "umount /"
    for rootfs in /dev/sda2 /dev/sda3; do
      echo "mount $rootfs /"
      echo "upload $IDENTITY /usr/share/mender/identity/mender-device-identity"
      echo "chmod 0755 /usr/share/mender/identity/mender-device-identity"
      echo "upload $CLIENT /usr/bin/prov_dev_client_bbb"
      echo "chmod 0755 /usr/bin/prov_dev_client_bbb"
      echo "umount /"
    done
  } | LIBGUESTFS_BACKEND_SETTINGS=force_tcg guestfish --rw --format=raw -a "$2"
  sync "$2"
}

# ---- flash: writing a stamped image to a card ---------------------------------------------------------
# Each tool_flash_NAME TARGET writes the same image (FLASH_IMAGE, stamped by `imprint batch --bmap`) or,
# for tool_flash_stamp, the same device stamped on the fly from FLASH_GOLDEN, to TARGET (a fresh regular
# file or a fresh loop device). Both tools write only the blocks FLASH_BMAP maps and fsync the target.

# imprint flash IMAGE: mapped ranges in large writes, fsync, then every range read back past the page
# cache (O_DIRECT) and its sha256 compared; the bmap's per-range sha256 is checked while writing.
tool_flash_imprint() {
  "$IMPRINT" flash "$FLASH_IMAGE" --bmap "$FLASH_BMAP" --target "$1" --force
}

# bmaptool copy: mapped ranges, the bmap's sha256 of each range checked on the data read from the image
# while writing, fsync (every 6 MiB on a block device, where it also switches the I/O scheduler); no read-back.
tool_flash_bmaptool() {
  bmaptool copy --bmap "$FLASH_BMAP" "$FLASH_IMAGE" "$1"
}

# imprint flash -p: the plan stamped into an in-memory overlay on the golden (opened read-only), then the
# golden's mapped ranges with the overlay on top written and read back as above: no copy of the image.
tool_flash_stamp() {
  "$IMPRINT" flash -p "$PROFILE" -i "$FLASH_GOLDEN" --device "$DEVICE" --target "$1" --force \
    --set "key_file=$KEY_PEM" --set "cert_file=$CERT_PEM" --set "pfx_file=$PFX" --set "dps_client=$CLIENT"
}

# ---- checking a result with independent tools (debugfs, e2fsck) --------------------------------

# partition_offset IMAGE N: byte offset of partition N (from sfdisk's dump).
partition_offset() {
  sfdisk -d "$1" | awk -v n="$2" -F'[ ,=]+' '
    $1 ~ ("[^0-9]" n "$") { for (i = 1; i <= NF; i++) if ($i == "start") { print $(i + 1) * 512; exit } }'
}

# check_file IMAGE PART PATH MODE HOSTFILE: PATH in partition PART is a copy of HOSTFILE, mode MODE, root:root.
check_file() {
  local image=$1 part=$2 path=$3 mode=$4 expected=$5 dev stat dumped
  dev="$image?offset=$(partition_offset "$image" "$part")"
  stat=$(debugfs -R "stat $path" "$dev" 2>&1)
  grep -q "Mode:  $mode" <<<"$stat" || { echo "p$part:$path: mode is not $mode"; return 1; }
  grep -Eq 'User: +0 +Group: +0 ' <<<"$stat" || { echo "p$part:$path: not owned by 0:0"; return 1; }
  dumped=$(mktemp)
  debugfs -R "dump $path $dumped" "$dev" >/dev/null 2>&1
  if ! cmp -s "$dumped" "$expected"; then
    rm -f "$dumped"
    echo "p$part:$path: content differs from $expected"
    return 1
  fi
  rm -f "$dumped"
}

# check_output IMAGE: the four files are in place with their modes, every ext4 partition is clean.
check_output() {
  local image=$1 part
  check_file "$image" 4 /mender/mender-agent.pem 0600 "$KEY_PKCS1" || return 1
  check_file "$image" 4 /mender/mender-certificate.pfx 0600 "$PFX" || return 1
  for part in 2 3; do
    check_file "$image" "$part" /usr/share/mender/identity/mender-device-identity 0755 "$IDENTITY" || return 1
    check_file "$image" "$part" /usr/bin/prov_dev_client_bbb 0755 "$CLIENT" || return 1
  done
  for part in 2 3 4; do
    e2fsck -fn "$image?offset=$(partition_offset "$image" "$part")" >/dev/null 2>&1 ||
      { echo "p$part: e2fsck -fn reports errors"; return 1; }
  done
}
