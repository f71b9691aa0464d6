#!/usr/bin/env bash
# Screenshots of every workbench panel, taken from the real binary under Xvfb, for docs/img/.
#
#   scripts/screenshots.sh RUNS_DIR RUN [OTHER_RUN] [BINARY]
#
# RUNS_DIR holds finished runs (e.g. `nerlab train --preset demo --out RUNS_DIR --name RUN` and
# the same with `--head softmax --name OTHER_RUN`). Needs xvfb, imagemagick and xdotool. Clicks
# are at fixed positions of a 1280x800 window; check the images by eye after a layout change.
set -euo pipefail
RUNS=$1
RUN=$2
OTHER=${3:-}
BIN=${4:-target/release/nerlab}
OUT=docs/img
mkdir -p "$OUT"
export DISPLAY=:77
Xvfb :77 -screen 0 1280x800x24 >/dev/null 2>&1 &
XVFB=$!
trap 'kill $XVFB' EXIT
sleep 2

# shot NAME PANEL [xdotool commands...]: opens the panel, runs the commands, saves NAME.png.
shot() {
    local name=$1 panel=$2
    shift 2
    "$BIN" gui --fresh --runs "$RUNS" --panel "$panel" --select "$RUN" --size 1280x800 >/dev/null 2>&1 &
    local pid=$!
    sleep 7
    for cmd in "$@"; do
        # shellcheck disable=SC2086
        xdotool $cmd
        sleep 2
    done
    import -window root /tmp/nerlab-shot.png
    kill $pid
    wait $pid 2>/dev/null || true
    convert /tmp/nerlab-shot.png -resize 1024x +dither -colors 256 -strip "$OUT/$name.png"
    echo "$OUT/$name.png"
}

shot launcher launch
if [ -n "$OTHER" ]; then
    # Tick the second run in the overlay list, and the log scale.
    shot curves curves "mousemove 302 44 click 1" "mousemove 318 67 click 1"
else
    shot curves curves
fi
# A span-level cell: the LC row's MISSED column.
shot confusion confusion "mousemove 630 115 click 1"
shot errors errors
shot attention attention
shot calibration calibration
if [ -n "$OTHER" ]; then
    # Compare with the second run: tick "compare with", open its picker, choose the run.
    shot tagger tagger "mousemove 412 68 click 1" "mousemove 560 68 click 1" "mousemove 560 92 click 1"
else
    shot tagger tagger
fi
shot experiments table
