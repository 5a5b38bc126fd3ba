#!/usr/bin/env bash
# System packages the tests use, from Debian: Chromium + ChromeDriver (browser test of the widgets) and
# dataset-fashion-mnist (real images available offline), fonts-noto-cjk (the notebooks' Chinese in figures),
# bubblewrap and libseccomp2 (the sandbox that autograding runs each submission in, grader/sandbox.py).
# Installs only what is missing, only as root; otherwise prints the command to run and the tests that need
# them are skipped (outside CI).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
# grep reads all of fc-list's output (no -q): an early exit would make fc-list fail with SIGPIPE under pipefail
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
ldconfig -p 2>/dev/null | grep libseccomp.so.2 >/dev/null || need+=(libseccomp2)  # the sandbox's seccomp filter
fc-list : family 2>/dev/null | grep -i "Noto Sans CJK" >/dev/null || need+=(fonts-noto-cjk)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] apt-get install ${need[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "[setup] optional system packages missing: ${need[*]}" >&2
    echo "[setup]   install with: sudo apt-get install ${need[*]}   (their tests are skipped until then)" >&2
fi
