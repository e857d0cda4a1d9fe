#!/usr/bin/env bash
# Creates sample media in DIR (default ./media) with ffmpeg: MP4 with and without faststart, WebM, audio,
# JPEG and PNG. Existing files are kept, so running it again is quick.
set -euo pipefail
dir=${1:-media}
mkdir -p "$dir"
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
src=(-f lavfi -i "testsrc2=duration=10:size=640x360:rate=30" -f lavfi -i "sine=frequency=440:duration=10")
[ -s "$dir/sample-faststart.mp4" ] || ff "${src[@]}" -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac \
  -movflags +faststart "$dir/sample-faststart.mp4"
[ -s "$dir/sample-moov-at-end.mp4" ] || ff "${src[@]}" -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac \
  "$dir/sample-moov-at-end.mp4"
[ -s "$dir/sample.webm" ] || ff "${src[@]}" -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 500k -c:a libopus \
  "$dir/sample.webm"
[ -s "$dir/tone.ogg" ] || ff -f lavfi -i "sine=frequency=660:duration=5" -c:a libopus "$dir/tone.ogg"
[ -s "$dir/still.jpg" ] || ff -f lavfi -i "testsrc2=size=640x360" -frames:v 1 "$dir/still.jpg"
[ -s "$dir/still.png" ] || ff -f lavfi -i "testsrc2=size=320x180" -frames:v 1 "$dir/still.png"
echo "sample media in $dir"
