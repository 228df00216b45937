#!/usr/bin/env bash
# Part of `make test`: tests/test_ui_browser.py drives Debian's Chromium through Playwright (no browser
# download) and skips its browser tests without one, so installing it is worth a try, never a reason to fail.
if command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  exit 0
fi
timeout 900 apt-get install -y -qq chromium >/dev/null 2>&1 \
  || { timeout 300 apt-get update -qq >/dev/null 2>&1 && timeout 900 apt-get install -y -qq chromium >/dev/null 2>&1; } \
  || echo "note: chromium could not be installed: the browser tests of tests/test_ui_browser.py will be skipped"
exit 0
