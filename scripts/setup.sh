#!/usr/bin/env bash
# Installs every Debian package imprint, its fixtures and its tests need.
# Idempotent: packages already installed are skipped; apt-get runs only when something is missing.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config
  ninja-build ccache  # scripts/build.sh: Ninja for new trees; ccache serves fresh clones (CI, the demo)
  # libraries
  libext2fs-dev libblkid-dev libfdisk-dev libarchive-dev libssl-dev libyaml-cpp-dev libcli11-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libguestfs-dev libseccomp-dev libxml2-dev
  libzstd-dev zlib1g-dev liblzma-dev  # batch --compress: independent frames (src/image/frames.cpp)
  # the factory line's ledger: SQLite, and PostgreSQL (client library; the server for its tests)
  libsqlite3-dev sqlite3 libpqxx-dev postgresql-15
  # the factory station: label QR codes, the HTTP status page
  libqrencode-dev libcpp-httplib-dev
  # fixtures and independent checks
  e2fsprogs dosfstools mtools fdisk util-linux mender-artifact openssl
  bsdutils  # script(1): runs imprint on a pseudo-terminal (progress tests)
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user-static bmap-tools
  gzip xz-utils zstd zip unzip file binutils-multiarch
  # an output filesystem without O_TMPFILE where the kernel has no vfat module (exFAT through FUSE)
  exfat-fuse exfatprogs
  # libguestfs backend and its appliance (a kernel in /boot, supermin), xfs for its tests
  libguestfs-tools linux-image-amd64 supermin qemu-utils xfsprogs
  # sanitizers and fuzzing (clang's libFuzzer and runtimes)
  clang libclang-rt-14-dev
  # station tests: decode label QR codes (SVG rendered to PNG first), load the status page in a
  # headless browser and decode its screenshot
  zbar-tools librsvg2-bin chromium python3 python3-pil
  # station tests: a VT100 emulator to read back what the live TTY view leaves on the screen
  python3-pyte
  # benchmarks (bench/run: /usr/bin/time for peak RSS)
  time
  # the factory station: card identity and --watch (libudev)
  libudev-dev
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
