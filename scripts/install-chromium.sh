#!/usr/bin/env bash
# Installs headless Chromium (Debian's `chromium` package) for the tests that
# look at Partita's HTML pages as a person would; does nothing when it is
# already there. Needs root (apt-get), as on CI. Prints the binary's path.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (Debian package, about a minute, once)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq chromium >&2
fi
command -v chromium
