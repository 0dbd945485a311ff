#!/usr/bin/env bash
# Sets everything up, builds the imprint executable (only it: not the test suite), builds the demo
# inputs (a mender-convert style golden image, device credentials signed by a test CA, an armhf DPS
# client stand-in) and runs the main job: stamp one device with the tutorial's profile, verify it,
# and show what landed where. Each step says what it does first.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
say() { echo "demo: $* ($((SECONDS - started)) s)" >&2; }

say "installing the Debian packages imprint needs (scripts/setup.sh)"
bash scripts/setup.sh
say "building the imprint executable (CMake, 2 cores; ccache makes later builds quick)"
IMPRINT_TARGETS=imprint bash scripts/build.sh
build="${IMPRINT_BUILD_DIR:-build}"
inputs="$build/fixtures"
say "building the demo inputs in $inputs: golden images, test credentials, an armhf binary"
fixtures/build-all.sh "$inputs" make-credentials.sh make-elf.sh

imprint="$build/imprint"
device=mender-azure-test-device1
certs="$inputs/credentials"
out="$build/demo"
rm -rf "$out"  # the demo's own directory: a re-run starts clean
mkdir -p "$out"
vars=(--set "key_file=$certs/$device.key.pem" --set "cert_file=$certs/$device.cert.pem"
      --set "pfx_file=$certs/$device.cert.pfx" --set "dps_client=$inputs/elf/hello-armhf")

say "the golden image: its partitions and filesystems"
(set -x; "$imprint" inspect "$inputs/mbr.img.gz")
say "what stamping $device would write (--dry-run: checks everything, writes nothing)"
(set -x; "$imprint" stamp -p profiles/azure-dps-mender.yaml -i "$inputs/mbr.img.gz" --device "$device" "${vars[@]}" --dry-run)
say "stamping $device into $out/$device.img"
(set -x; "$imprint" stamp -p profiles/azure-dps-mender.yaml -i "$inputs/mbr.img.gz" --device "$device" "${vars[@]}" \
  -o "$out/$device.img" --emit "$out")
say "verifying the stamped image against the profile"
(set -x; "$imprint" verify -p profiles/azure-dps-mender.yaml --device "$device" "${vars[@]}" "$out/$device.img")
say "what landed where: the data partition, the identity script, the preauthorization record"
(set -x; "$imprint" ls -l "$out/$device.img:/data/mender")
(set -x; "$imprint" cat "$out/$device.img:/usr/share/mender/identity/mender-device-identity")
(set -x; cat "$out/$device.preauth.json")
say "done"
