#!/usr/bin/env bash
# Sets everything up, builds imprint, builds the demo inputs (a mender-convert style golden image,
# device credentials signed by a test CA, an armhf DPS client stand-in) and runs the main job:
# stamp one device with the tutorial's profile, verify it, and show what landed where.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build="${IMPRINT_BUILD_DIR:-build}"
inputs="$build/fixtures"
fixtures/build-all.sh "$inputs"

imprint="$build/imprint"
device=mender-azure-test-device1
certs="$inputs/credentials"
out="$build/demo"
mkdir -p "$out"
vars=(--set "key_file=$certs/$device.key.pem" --set "cert_file=$certs/$device.cert.pem"
      --set "pfx_file=$certs/$device.cert.pfx" --set "dps_client=$inputs/elf/hello-armhf")

set -x
"$imprint" inspect "$inputs/mbr.img.gz"
"$imprint" stamp -p profiles/azure-dps-mender.yaml -i "$inputs/mbr.img.gz" --device "$device" "${vars[@]}" --dry-run
"$imprint" stamp -p profiles/azure-dps-mender.yaml -i "$inputs/mbr.img.gz" --device "$device" "${vars[@]}" \
  -o "$out/$device.img" --emit "$out" --force
"$imprint" verify -p profiles/azure-dps-mender.yaml --device "$device" "${vars[@]}" "$out/$device.img"
"$imprint" ls -l "$out/$device.img:/data/mender"
"$imprint" cat "$out/$device.img:/usr/share/mender/identity/mender-device-identity"
cat "$out/$device.preauth.json"
