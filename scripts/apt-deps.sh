#!/usr/bin/env bash
# Install the Debian packages the tests use (real SIP peers, browser, speech tools) when missing.
set -euo pipefail
need=()
for pair in sipp:sip-tester baresip:baresip-core kamailio:kamailio chromium:chromium \
            chromedriver:chromium-driver espeak-ng:espeak-ng sox:sox \
            /usr/lib/postgresql/15/bin/initdb:postgresql; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "voice-agent: installing ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" libsox-fmt-all >/dev/null
