#!/usr/bin/env bash
# Install the Debian tools that the test suite drives (CI machines start bare):
#   orthanc + orthanc-dicomweb  a real PACS for the bridge's end-to-end tests
#   dicom3tools (dciodvfy), dcmtk  DICOM conformance checks of the SR/SEG the bridge writes
#   prometheus (promtool)       checks deploy/prometheus.yml and the service's /metrics exposition
#   docker-compose (v1)         `docker-compose config -q` on docker-compose.yml (no engine needed)
#   chromium + chromium-driver  the headless browser the built-in viewer's tests drive (Selenium)
#   python3.11-venv             only for Debian's own python3.11, whose ensurepip lives in that package
# Idempotent: installs only what is missing. Without root (or apt-get) it says so and exits 0: the tests
# that need a missing tool skip with a reason.
set -euo pipefail

packages=(orthanc orthanc-dicomweb dicom3tools dcmtk prometheus docker-compose chromium chromium-driver)

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for package in "${packages[@]}"; do
        is_installed "${package}" || missing+=("${package}")
    done
    python="${PYTHON:-python3.11}"
    if [ "$(command -v "${python}" || true)" = "/usr/bin/${python}" ] \
        && ! "${python}" -c "import ensurepip" >/dev/null 2>&1; then
        missing+=("${python}-venv")
    fi
else
    echo "install-system-deps: no dpkg (not Debian): install ${packages[*]} yourself; tests needing them will skip" >&2
    exit 0
fi

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-system-deps: all Debian tools present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: not root: skipping apt-get install of ${missing[*]}; tests that need them will skip" >&2
    exit 0
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
