"""HLS repackaged on the fly from stored MP4 (issue 14), over real sockets, with local storage or radosgw.

Each class gets its own directory or bucket (test_api.Storage) and a server with a catalog, so that the same
resources are checked under /hls/<key>/... and /v/{id}/hls/.... The bit-exactness check: ffmpeg reading
master.m3u8 through the server and ffmpeg reading the source file give the same packets (`-c copy -f framemd5`:
timestamps, sizes and an MD5 of every packet), so nothing was re-encoded, dropped or moved.

Run from tests/integration: /usr/bin/python3 run_suite.py --bin ../../build/mediagate --storage local test_hls
(CTest: integration_hls_local, integration_hls_s3).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from fractions import Fraction
import subprocess
import time
import unittest
import urllib.parse
from pathlib import Path
from typing import Optional

import harness
import rawhttp
import test_api

FFMPEG = harness.FFMPEG
FFPROBE = os.environ.get("FFPROBE", str(Path(FFMPEG).with_name("ffprobe")))
# Made here (cached like the harness's fixtures, under .cache/hls-fixtures/<hash of the recipes>): H.265, two
# AAC tracks in two languages (alternate renditions), audio that starts 0.5 s late (an empty edit) beside
# H.264 with two B-frames (edit lists: the B-frame delay on the video, the AAC priming folded into the empty
# edit), and a mov_text (tx3g) subtitle track made from SUBS_SRT (a data: URI, so the recipe holds the text).
_V = ["-f", "lavfi", "-i", "testsrc2=duration=10:size=320x180:rate=30"]
_A = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10"]
_A2 = ["-f", "lavfi", "-i", "sine=frequency=880:sample_rate=44100:duration=10"]
SUBS_SRT = """1
00:00:00,500 --> 00:00:02,000
First cue & friends

2
00:00:02,500 --> 00:00:04,250
Deux lignes, é ü
second line

3
00:00:05,400 --> 00:00:06,600
Across the 6 s cut

4
00:00:08,000 --> 00:00:09,500
Last <i>words</i> MARKER
"""
_SUBS = ["-f", "srt", "-i", "data:text/plain;base64," + base64.b64encode(SUBS_SRT.encode()).decode()]
EXTRA_RECIPES = {
    "hevc.mp4": _V + _A + ["-map", "0:v", "-map", "1:a", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
                           "keyint=60:min-keyint=60:open-gop=0:scenecut=0:log-level=error", "-tag:v", "hvc1", "-c:a", "aac", "-b:a", "64k",
                           "-movflags", "+faststart"] + harness._BITEXACT,
    "two-audio.mp4": _V + _A + _A2 + ["-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset",
                                      "veryfast", "-g", "60", "-c:a", "aac", "-b:a", "64k",
                                      "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra"]
    + harness._BITEXACT,
    "delay.mp4": _V + ["-itsoffset", "0.5", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=9",
                       "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "60",
                       "-c:a", "aac", "-b:a", "64k"] + harness._BITEXACT,
    "subs.mp4": _V + _A + _SUBS + ["-map", "0:v", "-map", "1:a", "-map", "2:s", "-c:v", "libx264", "-preset",
                                   "veryfast", "-g", "60", "-c:a", "aac", "-b:a", "64k", "-c:s", "mov_text",
                                   "-metadata:s:s:0", "language=eng"] + harness._BITEXACT,
}


def extra_fixtures() -> Path:
    recipe = json.dumps({"ffmpeg": harness._ffmpeg_version(), "recipes": EXTRA_RECIPES}, sort_keys=True)
    base = Path(os.environ.get("MEDIAGATE_TEST_CACHE", harness.REPO / ".cache" / "integration-fixtures"))
    return harness.build_fixtures(base.parent / "hls-fixtures" / hashlib.sha256(recipe.encode()).hexdigest()[:16],
                                  EXTRA_RECIPES)


SOURCES = {"clip.mp4": "clip.mp4", "moov at end/clip.mp4": "clip-nofaststart.mp4", "clip.webm": "clip.webm",
           "image.jpg": "image.jpg"}
HLS_TYPE = "application/vnd.apple.mpegurl"


def framemd5(url_or_path: str, maps=("0:v", "0:a")) -> dict[str, tuple[Fraction, list[list[str]]]]:
    """ffmpeg's packets (`-c copy -f framemd5`) of the audio and video streams by media type: the stream's time
    base and, per packet, its dts, pts, duration, size, MD5 (and side data)."""
    args = [a for m in maps for a in ("-map", m)]
    r = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", url_or_path, *args, "-c", "copy",
                        "-f", "framemd5", "-"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"ffmpeg -i {url_or_path} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    types, bases, packets = {}, {}, {}
    for line in r.stdout.splitlines():
        if line.startswith("#media_type"):
            types[int(line.split()[1].rstrip(":"))] = line.split()[2]
        elif line.startswith("#tb"):
            bases[int(line.split()[1].rstrip(":"))] = Fraction(line.split()[2])
        elif line and not line.startswith("#"):
            fields = [f.strip() for f in line.split(",")]
            packets.setdefault(int(fields[0]), []).append(fields[1:])
    out, seen = {}, {}
    for i in sorted(packets):  # audio 1, audio 2, ...: streams of a kind keep their order in both readings
        seen[types[i]] = seen.get(types[i], 0) + 1
        out[f"{types[i]} {seen[types[i]]}"] = (bases[i], packets[i])
    return out


def packet_problems(expected, got) -> list[str]:
    """What differs between two framemd5 readings: every stream must have the same packets (duration, size,
    MD5: nothing re-encoded, dropped or reordered), and every timestamp of a stream must be moved by one offset
    (to within a tick of rounding between time bases), of at most 0.1 s.

    The offsets are per stream and per kind of timestamp, not common to all: the fragments apply the edit lists themselves (no edts in the
    init segments, see mp4::apply_edit_lists), the video's B-frame delay as signed composition offsets (trun
    version 1), and ffmpeg 5.1's fMP4 reader presents such a track late by its most negative offset (it adds
    its dts_shift to the pts but not to the tfdt-based dts), and its command line then moves every stream by
    the input's start. Audio and video sync is checked box by box in
    test_first_presentation_times instead. The skip-samples side data and the last audio packet's duration
    are ffmpeg's too: it applies an audio edit list (the AAC priming, the padding at the end) to a progressive
    file only."""
    problems = []
    if sorted(expected) != sorted(got):
        return [f"streams {sorted(got)} instead of {sorted(expected)}"]
    for kind, (base, packets) in expected.items():
        pts_offsets, dts_offsets = [], []
        got_base, got_packets = got[kind]
        # Duration, size and MD5; the source's last packet may be shorter: its edit list ends inside it.
        if [p[3:5] for p in packets] != [p[3:5] for p in got_packets] or \
                [p[2] for p in packets[:-1]] != [p[2] for p in got_packets[:-1]] or \
                int(packets[-1][2]) * base > int(got_packets[-1][2]) * got_base:
            problems.append(f"{kind}: {len(got_packets)} packets differ from the source's {len(packets)}")
            continue
        for a, b in zip(packets, got_packets):
            pts_offsets.append(int(b[1]) * got_base - int(a[1]) * base)
            dts_offsets.append(int(b[0]) * got_base - int(a[0]) * base)
        for name, offsets in (("pts", pts_offsets), ("dts", dts_offsets)):
            if offsets and max(offsets) - min(offsets) > Fraction(1, 1000):
                problems.append(f"{kind}: {name} moved by {float(min(offsets))}..{float(max(offsets))} s: "
                                "not one offset")
            if offsets and abs(min(offsets)) > Fraction(1, 10):
                problems.append(f"{kind}: {name} moved by {float(min(offsets))} s")
    return problems


def framemd5_each(url: str, streams: dict[str, tuple[Fraction, list[list[str]]]]):
    """framemd5() of a DASH manifest, one stream at a time: ffmpeg's DASH demuxer ends the whole input as soon as
    the representation it reads next (the one with the lowest pts so far) ends, so reading several at once loses
    the video's last packets when the audio ends first."""
    out = {}
    for kind in streams:
        media, n = kind.split()
        got = framemd5(url, (f"0:{media[0]}:{int(n) - 1}",))
        out[kind] = got[f"{media} 1"]
    return out


def source_first_pts(path: Path) -> list[tuple[str, float]]:
    """(codec type, earliest pts in seconds among its first 16 packets) of each stream of a progressive file, as
    ffprobe reads it: with its edit lists applied."""
    r = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "stream=index,codec_type:packet=stream_index,pts_time",
                        "-of", "json", str(path)], capture_output=True, text=True, timeout=60, check=True)
    info = json.loads(r.stdout)
    first: dict[int, list[float]] = {}
    for p in info["packets"]:
        first.setdefault(p["stream_index"], []).append(float(p["pts_time"]))
    return [(st["codec_type"], min(first[st["index"]][:16])) for st in info["streams"]
            if st["codec_type"] in ("video", "audio")]


def fragment_first_presentation(init: bytes, segment: bytes) -> float:
    """The earliest presentation time (seconds) of a CMAF media segment, from its boxes as ISO/IEC 14496-12
    defines them: tfdt plus, per sample, the durations before it and its composition offset (signed in trun
    version 1); the timescale from the init segment's mdhd, which must carry no edit list."""
    assert not box_offsets(init, ["moov", "trak", "edts"]), "an edit list in the init segment"
    mdhd = box_offsets(init, ["moov", "trak", "mdia", "mdhd"])[0]
    timescale = int.from_bytes(init[mdhd + 20:mdhd + 24] if init[mdhd + 8] == 0 else init[mdhd + 28:mdhd + 32], "big")
    tfdt = box_offsets(segment, ["moof", "traf", "tfdt"])[0]
    dts = int.from_bytes(segment[tfdt + 12:tfdt + 20] if segment[tfdt + 8] == 1 else segment[tfdt + 12:tfdt + 16], "big")
    trun = box_offsets(segment, ["moof", "traf", "trun"])[0]
    version, flags = segment[trun + 8], int.from_bytes(segment[trun + 9:trun + 12], "big")
    count = int.from_bytes(segment[trun + 12:trun + 16], "big")
    pos = trun + 16 + (4 if flags & 1 else 0) + (4 if flags & 4 else 0)
    tfhd = box_offsets(segment, ["moof", "traf", "tfhd"])[0]
    assert flags & 0x100, "trun without sample durations"  # our fragments always carry them
    earliest = None
    for _ in range(count):
        duration = int.from_bytes(segment[pos:pos + 4], "big")
        pos += 4 + (4 if flags & 0x200 else 0) + (4 if flags & 0x400 else 0)
        cts = 0
        if flags & 0x800:
            cts = int.from_bytes(segment[pos:pos + 4], "big", signed=version == 1)
            pos += 4
        earliest = dts + cts if earliest is None else min(earliest, dts + cts)
        dts += duration
    del tfhd
    return earliest / timescale


def webvtt_cues(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of a WebVTT file; markup tags dropped and entities decoded (ffmpeg's
    webvtt writer keeps '&' bare and re-creates <i> from tx3g style boxes, which we ignore)."""
    import html
    cues = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.strip("\n").split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^((?:\d+:)?\d+:\d+\.\d+) --> ((?:\d+:)?\d+:\d+\.\d+)", line)
            if m:
                def seconds(t: str) -> float:
                    parts = [float(x) for x in t.split(":")]
                    return sum(v * 60 ** (len(parts) - 1 - k) for k, v in enumerate(parts))
                body = html.unescape(re.sub(r"<[^>]*>", "", "\n".join(lines[i + 1:])))
                cues.append((seconds(m.group(1)), seconds(m.group(2)), body))
                break
    return cues


def box_offsets(data: bytes, path: list[str], start: int = 0, end: Optional[int] = None) -> list[int]:
    """Offsets of the boxes at `path` (e.g. ["moov", "trak", "mdia", "mdhd"]) in an MP4's bytes."""
    end = len(data) if end is None else end
    found, pos = [], start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8].decode("latin-1")
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        if size < header:
            break
        if kind == path[0]:
            if len(path) == 1:
                found.append(pos)
            else:
                inner = pos + header + (8 if kind == "stsd" else 0)
                found += box_offsets(data, path[1:], inner, pos + size)
        pos += size
    return found


def patched(data: bytes, path: list[str], at: int, value: bytes) -> bytes:
    """`data` with `value` written `at` bytes into the first box at `path`."""
    pos = box_offsets(data, path)[0] + at
    return data[:pos] + value + data[pos + len(value):]


def hostile_files(clip: bytes) -> dict[str, tuple[bytes, int, str]]:
    """Broken or hostile MP4s made from a fast-start clip: key -> (bytes, status, reason in the answer)."""
    trak = ["moov", "trak"]
    stbl = trak + ["mdia", "minf", "stbl"]
    u32 = lambda v: v.to_bytes(4, "big")  # noqa: E731
    return {
        # stsz claims 2^32-1 samples in a box of a few hundred bytes: refused before anything is allocated
        "hostile/stsz-count.mp4": (patched(clip, stbl + ["stsz"], 16, u32(0xFFFFFFFF)), 422, "samples"),
        "hostile/timescale-0.mp4": (patched(clip, trak + ["mdia", "mdhd"], 20, u32(0)), 422, "timescale 0"),
        # frames of 2^32-1 ticks: 971 days of video, past any movie's length
        "hostile/stts-absurd.mp4": (patched(clip, stbl + ["stts"], 20, u32(0xFFFFFFFF)), 422, "a duration of"),
        "hostile/stsc-start.mp4": (patched(clip, stbl + ["stsc"], 16, u32(5)), 422, "stsc"),
        "hostile/stsc-past-chunks.mp4": (patched(clip, stbl + ["stsc"], 20, u32(100000)), 422, "stsc"),
        "hostile/stss-zero.mp4": (patched(clip, stbl + ["stss"], 16, u32(0)), 422, "stss names sample 0"),
        # a box inside moov that claims more than its parent holds, and one smaller than its own header
        "hostile/trak-past-moov.mp4": (patched(clip, trak, 0, u32(0x7FFFFFFF)), 422, "has size"),
        "hostile/box-too-small.mp4": (patched(clip, trak + ["tkhd"], 0, u32(3)), 422, "has size"),
        # the samples lie past the end of what is stored
        "hostile/truncated.mp4": (clip[:len(clip) // 2], 422, "past the end of the file"),
        "hostile/moov-past-eof.mp4": (patched(clip, ["moov"], 0, u32(len(clip) * 2)), 422, "runs past the end"),
        "hostile/no-moov.mp4": (clip[:box_offsets(clip, ["moov"])[0]] + b"\0\0\0\x10free" + b"\0" * 8, 422,
                                "no moov"),
        "hostile/text.mp4": (b"this is text, not a movie\n" * 10, 415, "not an MP4"),
        "hostile/fragmented.mp4": (clip[:32] + u32(16) + b"moof" + b"\0" * 8, 415, "fragmented"),
    }


class HlsTest(test_api.ServerCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls) -> None:
        cls.storage = test_api.Storage(cls.__name__)
        cache = harness.build_cache()
        cls.sources = {}
        for key, source in SOURCES.items():
            cls.sources[key] = cache / source
            cls.storage.put(key, (cache / source).read_bytes())
        extra = extra_fixtures()
        for name in EXTRA_RECIPES:
            cls.sources[name] = extra / name
            cls.storage.put(name, (extra / name).read_bytes())
        cls.hostile = hostile_files((cache / "clip.mp4").read_bytes())
        for key, (data, _, _) in cls.hostile.items():
            cls.storage.put(key, data)
        cls.server = test_api.start_server(cls.storage, ["--scan-on-start"], cls.__name__)
        cls.port = cls.server.port
        cls.base = f"http://127.0.0.1:{cls.port}"

    def get(self, target: str, headers=(), method: str = "GET") -> rawhttp.Response:
        with rawhttp.Connection(self.port) as conn:
            return conn.request(method, target, headers)

    def hls(self, key: str, resource: str) -> str:
        return "/hls/" + urllib.parse.quote(key, safe="/") + "/" + resource

    def item_id(self, key: str) -> str:
        for _ in range(100):
            r = self.get("/api/media?per_page=200")
            self.assertEqual(r.status, 200, r.describe())
            for item in json.loads(r.body)["items"]:
                if item["key"] == key:
                    return item["id"]
            time.sleep(0.1)  # --scan-on-start may still be running
        self.fail(f"{key} is not in the catalog")

    def playlist(self, target: str) -> str:
        r = self.get(target)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.media_type(), HLS_TYPE)
        text = r.body.decode()
        self.assertTrue(text.startswith("#EXTM3U\n"), text)
        return text

    # -- playlists

    def check_media_playlist(self, text: str) -> list[float]:
        """Apple's rules (what mediastreamvalidator checks) for a VOD media playlist; returns the EXTINFs."""
        self.assertIn("#EXT-X-VERSION:7\n", text)  # fMP4 segments with EXT-X-MAP need version 6+; we say 7
        self.assertIn("#EXT-X-PLAYLIST-TYPE:VOD\n", text)
        self.assertTrue(text.endswith("#EXT-X-ENDLIST\n"), text)
        self.assertEqual(len(re.findall(r"^#EXT-X-MAP:URI=\"\d+/init\.mp4\"$", text, re.M)), 1, text)
        self.assertNotIn("#EXT-X-DISCONTINUITY", text)  # one timeline: tfdt continues from segment to segment
        target = int(re.search(r"^#EXT-X-TARGETDURATION:(\d+)$", text, re.M).group(1))
        durations = [float(d) for d in re.findall(r"^#EXTINF:([0-9.]+),$", text, re.M)]
        uris = re.findall(r"^(\d+/seg-\d+\.m4s)$", text, re.M)
        self.assertEqual(len(durations), len(uris))
        self.assertEqual(uris, [f"{uris[0].split('/')[0]}/seg-{n}.m4s" for n in range(len(uris))])
        for d in durations:
            self.assertLessEqual(round(d), target, text)  # RFC 8216 §4.3.3.1
            self.assertGreater(d, 0)
        return durations

    def test_master_and_media_playlists(self) -> None:
        for key in ("clip.mp4", "moov at end/clip.mp4"):
            with self.subTest(key=key):
                master = self.playlist(self.hls(key, "master.m3u8"))
                self.assertIn("#EXT-X-VERSION:7\n", master)
                inf = re.search(r"^#EXT-X-STREAM-INF:(.*)\n(\d+)\.m3u8$", master, re.M)
                self.assertIsNotNone(inf, master)
                self.assertRegex(inf.group(1), r'CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"')
                self.assertIn("RESOLUTION=640x360", inf.group(1))
                self.assertRegex(inf.group(1), r"BANDWIDTH=\d+")
                audio = re.findall(r'^#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio".*URI="(\d+)\.m3u8"$', master, re.M)
                self.assertEqual(len(audio), 1, master)
                for track in (inf.group(2), audio[0]):
                    durations = self.check_media_playlist(self.playlist(self.hls(key, f"{track}.m3u8")))
                    self.assertAlmostEqual(sum(durations), 10.0, delta=0.05)
                # 2 s keyframe interval, 6 s target: segments of 6 and 4 s of video.
                video = self.check_media_playlist(self.playlist(self.hls(key, f"{inf.group(2)}.m3u8")))
                self.assertEqual(video, [6.0, 4.0])

    def test_packets_equal_the_source(self) -> None:
        for key in ("clip.mp4", "moov at end/clip.mp4", "hevc.mp4", "two-audio.mp4", "delay.mp4", "subs.mp4"):
            with self.subTest(key=key):
                expected = framemd5(str(self.sources[key]))
                self.assertEqual(len(expected["video 1"][1]), 300)  # 10 s at 30 fps
                got = framemd5(self.base + self.hls(key, "master.m3u8"))
                self.assertEqual(packet_problems(expected, got), [])

    def test_first_presentation_times(self) -> None:
        """Edit lists applied in the fragments: each stream's first segment presents its first sample when the
        source (ffprobe of the progressive file, edit lists applied) does, within one frame, and audio against
        video to within a millisecond (the common shift that keeps AAC priming off negative times is < 1 frame).
        The DASH timeline starts at the same tfdt."""
        import xml.etree.ElementTree as ET
        ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
        for key in ("clip.mp4", "moov at end/clip.mp4", "hevc.mp4", "two-audio.mp4", "delay.mp4"):
            with self.subTest(key=key):
                source = source_first_pts(self.sources[key])
                mpd = ET.fromstring(self.get("/dash/" + urllib.parse.quote(key, safe="/") + "/manifest.mpd").body)
                got = []
                for index, (kind, _) in enumerate(source):
                    track = index + 1  # ffmpeg numbers tracks from 1 in stream order
                    init = self.get(self.hls(key, f"{track}/init.mp4"))
                    seg = self.get(self.hls(key, f"{track}/seg-0.m4s"))
                    self.assertEqual((init.status, seg.status), (200, 200))
                    got.append(fragment_first_presentation(init.body, seg.body))
                    template = mpd.find(f"d:Period/d:AdaptationSet[@id='{track}']/d:Representation/d:SegmentTemplate", ns)
                    tfdt = box_offsets(seg.body, ["moof", "traf", "tfdt"])[0]
                    self.assertEqual(int(template.find("d:SegmentTimeline/d:S", ns).get("t")),
                                     int.from_bytes(seg.body[tfdt + 12:tfdt + 20], "big"))
                for (kind, expected), value in zip(source, got):
                    self.assertAlmostEqual(value, expected, delta=1 / 30, msg=f"{kind}: {got} vs {source}")
                for (_, a), b in zip(source[1:], got[1:]):  # each stream against the first (the video)
                    self.assertAlmostEqual(b - got[0], a - source[0][1], delta=0.001, msg=f"{got} vs {source}")
                print(f"  {key}: first presentation {[round(v, 4) for v in got]} s, source "
                      f"{[round(v, 4) for _, v in source]} s")

    def test_subtitles_become_webvtt_renditions(self) -> None:
        key = "subs.mp4"
        expected = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", str(self.sources[key]), "-map", "0:s",
                                   "-f", "webvtt", "-"], capture_output=True, text=True, timeout=60, check=True).stdout
        expected_cues = webvtt_cues(expected)
        self.assertEqual(len(expected_cues), 4, expected)
        master = self.playlist(self.hls(key, "master.m3u8"))
        media = re.findall(r'^#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="[^"]+",LANGUAGE="eng",.*URI="(\d+)\.m3u8"$',
                           master, re.M)
        self.assertEqual(len(media), 1, master)
        self.assertRegex(master, r'#EXT-X-STREAM-INF:.*,SUBTITLES="subs"\n1\.m3u8\n')
        playlist = self.playlist(self.hls(key, f"{media[0]}.m3u8"))
        uris = re.findall(r"^(\d+/seg-\d+\.vtt)$", playlist, re.M)
        durations = [float(d) for d in re.findall(r"^#EXTINF:([0-9.]+),$", playlist, re.M)]
        self.assertEqual(durations, self.check_media_playlist(self.playlist(self.hls(key, "1.m3u8"))))
        self.assertEqual(len(uris), 2)
        # Cue times are on the fragments' timeline, which is the source's moved by a common shift (< 1 frame:
        # the AAC priming kept off negative times), that of the video.
        source_video = source_first_pts(self.sources[key])[0][1]
        shift = fragment_first_presentation(self.get(self.hls(key, "1/init.mp4")).body,
                                            self.get(self.hls(key, "1/seg-0.m4s")).body) - source_video
        self.assertLess(abs(shift), 1 / 30)
        expected_cues = [(a + shift, b + shift, t) for a, b, t in expected_cues]
        got, start = [], 0.0
        for uri, duration in zip(uris, durations):
            r = self.get(self.hls(key, uri))
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.media_type(), "text/vtt")
            text = r.body.decode("utf-8")
            self.assertTrue(text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"), text)
            cues = webvtt_cues(text)
            for cue in cues:  # every cue of a segment overlaps it
                self.assertLess(cue[0], start + duration)
                self.assertGreater(cue[1], start)
            got += [c for c in cues if c not in got]  # a cue across a cut is in both segments
            start += duration
        self.assert_same_cues(got, expected_cues)
        self.assertIn("Across the 6 s cut", [c[2] for c in got])
        # DASH: one whole WebVTT file in a text AdaptationSet.
        import xml.etree.ElementTree as ET
        ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
        mpd = ET.fromstring(self.get(f"/dash/{key}/manifest.mpd").body)
        text_set = mpd.find("d:Period/d:AdaptationSet[@contentType='text']", ns)
        self.assertEqual((text_set.get("mimeType"), text_set.get("lang")), ("text/vtt", "eng"))
        url = text_set.find("d:Representation/d:BaseURL", ns).text
        whole = self.get(f"/dash/{key}/{url}")
        self.assertEqual(whole.status, 200, whole.describe())
        self.assert_same_cues(webvtt_cues(whole.body.decode("utf-8")), expected_cues)

    def assert_same_cues(self, got, expected) -> None:
        """The same cue texts at the same times, to the millisecond of WebVTT's times."""
        self.assertEqual([c[2] for c in got], [c[2] for c in expected])
        for a, b in zip(got, expected):
            self.assertAlmostEqual(a[0], b[0], delta=0.0015, msg=f"{got} vs {expected}")
            self.assertAlmostEqual(a[1], b[1], delta=0.0015, msg=f"{got} vs {expected}")

    def test_hostile_subtitle_samples_give_clean_webvtt(self) -> None:
        """A tx3g sample whose length runs past it, holding invalid UTF-8, '-->' and a blank line: 200 with a
        valid WebVTT file (bad bytes replaced, '>' escaped, the blank line dropped), and the rest unchanged."""
        data = bytearray(self.sources["subs.mp4"].read_bytes())
        at = data.find(b"Last words MARKER")
        self.assertGreater(at, 0)
        data[at - 2:at] = (0xFFFF).to_bytes(2, "big")  # the 16-bit length: past the sample's end
        data[at:at + 17] = b"\xff-->\n\n\xc0\xafxy MARKER"
        self.storage.put("hostile/subs.mp4", bytes(data))
        playlist = self.playlist(self.hls("hostile/subs.mp4", "3.m3u8"))
        last = re.findall(r"^(\d+/seg-\d+\.vtt)$", playlist, re.M)[-1]
        r = self.get(self.hls("hostile/subs.mp4", last))
        self.assertEqual(r.status, 200, r.describe())
        text = r.body.decode("utf-8")  # valid UTF-8
        self.assertIn(" --> 00:00:09.5", text)
        self.assertIn("\n\ufffd--&gt;\n\ufffd\ufffdxy MARKER", text)
        self.assertEqual(text.count("-->"), len(webvtt_cues(text)))
        whole = self.get("/dash/hostile/subs.mp4/3/whole.vtt")
        self.assertEqual(whole.status, 200)
        self.assertEqual(len(webvtt_cues(whole.body.decode("utf-8"))), 4)

    def test_hevc_and_alternate_audio_renditions(self) -> None:
        master = self.playlist(self.hls("hevc.mp4", "master.m3u8"))
        self.assertRegex(master, r'CODECS="hvc1\.1\.6\.L\d+\.[0-9a-f.]+,mp4a\.40\.2"')
        self.assertIn("RESOLUTION=320x180", master)
        video = self.check_media_playlist(self.playlist(self.hls("hevc.mp4", "1.m3u8")))
        self.assertEqual(video, [6.0, 4.0])
        master = self.playlist(self.hls("two-audio.mp4", "master.m3u8"))
        media = re.findall(r"^#EXT-X-MEDIA:(.*)$", master, re.M)
        self.assertEqual(len(media), 2, master)
        self.assertIn('LANGUAGE="eng",DEFAULT=YES', media[0])
        self.assertIn('LANGUAGE="fra",DEFAULT=NO', media[1])
        for line, track in zip(media, ("2", "3")):
            self.assertIn(f'URI="{track}.m3u8"', line)
            durations = self.check_media_playlist(self.playlist(self.hls("two-audio.mp4", f"{track}.m3u8")))
            self.assertAlmostEqual(sum(durations), 10.0, delta=0.05)
        # 44.1 kHz audio is cut at the same times as the video and the 48 kHz track (within one AAC frame), on
        # the timeline of the fragments (tfdt: edit lists applied).
        starts = []
        for track in (1, 2, 3):
            init = self.get(self.hls("two-audio.mp4", f"{track}/init.mp4")).body
            seg = self.get(self.hls("two-audio.mp4", f"{track}/seg-1.m4s")).body
            starts.append(fragment_first_presentation(init, seg))
        self.assertAlmostEqual(starts[0], 6.0, delta=1 / 30)
        self.assertAlmostEqual(starts[1], starts[0], delta=1024 / 44100)
        self.assertAlmostEqual(starts[2], starts[0], delta=1024 / 44100)

    def test_dash_manifest_over_the_same_segments(self) -> None:
        import xml.etree.ElementTree as ET
        ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
        for key in ("clip.mp4", "moov at end/clip.mp4"):
            with self.subTest(key=key):
                r = self.get("/dash/" + urllib.parse.quote(key, safe="/") + "/manifest.mpd")
                self.assertEqual(r.status, 200, r.describe())
                self.assertEqual(r.media_type(), "application/dash+xml")
                mpd = ET.fromstring(r.body)
                self.assertEqual(mpd.get("type"), "static")
                sets = mpd.findall("d:Period/d:AdaptationSet", ns)
                self.assertEqual(sorted(s.get("contentType") for s in sets), ["audio", "video"])
                for s in sets:
                    template = s.find("d:Representation/d:SegmentTemplate", ns)
                    scale = int(template.get("timescale"))
                    t = 0
                    timeline = template.findall("d:SegmentTimeline/d:S", ns)
                    t = first = int(timeline[0].get("t"))  # the first tfdt: edit lists applied (< 1 frame)
                    self.assertLess(first / scale, 1 / 30)
                    for e in timeline:
                        self.assertEqual(int(e.get("t")), t)  # no gaps, no overlaps
                        t += int(e.get("d")) * (1 + int(e.get("r", "0")))
                    self.assertAlmostEqual((t - first) / scale, 10.0, delta=0.05)
                # The DASH segment URLs name the very bytes of the HLS ones.
                track = sets[0].find("d:Representation", ns).get("id")
                dash_seg = self.get("/dash/" + urllib.parse.quote(key, safe="/") + f"/{track}/seg-1.m4s")
                hls_seg = self.get(self.hls(key, f"{track}/seg-1.m4s"))
                self.assertEqual(dash_seg.status, 200)
                self.assertEqual(dash_seg.body, hls_seg.body)
                self.assertEqual(dash_seg.header("etag"), hls_seg.header("etag"))
                expected = framemd5(str(self.sources[key]))
                got = framemd5_each(self.base + "/dash/" + urllib.parse.quote(key, safe="/") + "/manifest.mpd",
                                    expected)
                self.assertEqual(packet_problems(expected, got), [])

    def test_catalog_view_serves_the_same_resources(self) -> None:
        item = self.item_id("clip.mp4")
        for prefix, resource in (("hls", "master.m3u8"), ("hls", "1.m3u8"), ("hls", "1/init.mp4"),
                                 ("hls", "1/seg-1.m4s"), ("hls", "2/seg-0.m4s"), ("dash", "manifest.mpd"),
                                 ("dash", "2/seg-1.m4s")):
            with self.subTest(resource=resource):
                a = self.get(f"/{prefix}/clip.mp4/{resource}")
                b = self.get(f"/v/{item}/{prefix}/{resource}")
                self.assertEqual(a.status, 200, a.describe())
                self.assertEqual(b.status, 200, b.describe())
                self.assertEqual(a.body, b.body)
                self.assertEqual(a.header("etag"), b.header("etag"))
        expected = framemd5(str(self.sources["clip.mp4"]))
        self.assertEqual(packet_problems(expected, framemd5(f"{self.base}/v/{item}/hls/master.m3u8")), [])

    # -- HTTP rules on generated resources

    def test_validators_ranges_and_head_on_every_resource(self) -> None:
        for resource in ("master.m3u8", "1.m3u8", "2.m3u8", "1/init.mp4", "1/seg-0.m4s", "1/seg-1.m4s",
                         "2/seg-1.m4s", "manifest.mpd"):
            with self.subTest(resource=resource):
                target = self.hls("moov at end/clip.mp4", resource)
                full = self.get(target)
                self.assertEqual(full.status, 200, full.describe())
                etag = full.header("etag")
                self.assertRegex(etag, r'^"[0-9a-f]{32}"$')  # strong
                self.assertEqual(int(full.header("content-length")), len(full.body))
                self.assertEqual(full.header("accept-ranges"), "bytes")
                self.assertIsNotNone(full.header("last-modified"))
                again = self.get(target)  # deterministic: the same bytes and validator
                self.assertEqual(again.body, full.body)
                self.assertEqual(again.header("etag"), etag)
                head = self.get(target, method="HEAD")
                self.assertEqual(head.status, 200)
                self.assertEqual(head.body, b"")
                self.assertEqual(head.header("content-length"), full.header("content-length"))
                self.assertEqual(head.header("etag"), etag)
                nm = self.get(target, [("If-None-Match", etag)])
                self.assertEqual(nm.status, 304, nm.describe())
                self.assertEqual(nm.body, b"")
                self.assertEqual(nm.header("etag"), etag)
                size = len(full.body)
                for first, last in ((0, 0), (3, min(size - 1, 99)), (size // 2, size - 1), (size - 7, size - 1)):
                    r = self.get(target, [("Range", f"bytes={first}-{last}")])
                    self.assertEqual(r.status, 206, r.describe())
                    self.assertEqual(r.header("content-range"), f"bytes {first}-{last}/{size}")
                    self.assertEqual(r.body, full.body[first:last + 1])
                r = self.get(target, [("Range", "bytes=0-1,5-9")])
                self.assertEqual(r.status, 206)
                parts = rawhttp.parse_byteranges(r.header("content-type"), r.body)
                self.assertEqual([p.data for p in parts], [full.body[0:2], full.body[5:10]])
                r = self.get(target, [("Range", f"bytes={size}-")])
                self.assertEqual(r.status, 416)
                r = self.get(target, [("Range", "bytes=0-9"), ("If-Range", '"other"')])
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, full.body)
                r = self.get(target, [("If-Match", '"other"')])
                self.assertEqual(r.status, 412)

    def test_segment_is_moof_then_exactly_its_samples(self) -> None:
        r = self.get(self.hls("clip.mp4", "1/seg-1.m4s"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.media_type(), "video/mp4")
        body = r.body
        moof_size = int.from_bytes(body[0:4], "big")
        self.assertEqual(body[4:8], b"moof")
        mdat_size = int.from_bytes(body[moof_size:moof_size + 4], "big")
        self.assertEqual(body[moof_size + 4:moof_size + 8], b"mdat")
        self.assertEqual(moof_size + mdat_size, len(body))
        # Every sample's bytes come from the source file: the payload is found there in contiguous runs.
        source = self.sources["clip.mp4"].read_bytes()
        payload = body[moof_size + 8:]
        self.assertTrue(payload[:1024] in source, "the first sample's bytes are not the source's")
        self.assertTrue(payload[-64:] in source, "the last sample's bytes are not the source's")

    def test_mutated_indexes_never_fail_the_server(self) -> None:
        """Bytes of the moov of a real clip flipped at random: every answer is 200, 404, 415 or 422."""
        import random
        rng = random.Random(harness.RANDOM_SEED)
        clip = self.sources["clip.mp4"].read_bytes()
        moov = box_offsets(clip, ["moov"])[0]
        moov_size = int.from_bytes(clip[moov:moov + 4], "big")
        statuses = {}
        for n in range(40):
            data = bytearray(clip)
            for _ in range(rng.choice((1, 2, 8))):
                data[rng.randrange(moov + 8, moov + moov_size)] = rng.randrange(256)
            key = f"mutated/{n}.mp4"
            self.storage.put(key, bytes(data))
            for resource in ("master.m3u8", "1.m3u8", "1/init.mp4", "1/seg-1.m4s", "2/seg-0.m4s"):
                r = self.get(self.hls(key, resource))
                self.assertIn(r.status, (200, 404, 415, 422), f"{key} {resource}: {r.describe()}")
                statuses[r.status] = statuses.get(r.status, 0) + 1
        self.assertTrue(self.server.alive())
        print(f"  mutated moov answers: {statuses}")

    def test_made_resources_are_kept_per_object_version(self) -> None:
        """A resource is made once per object version and served again as made: the same bytes and validator, and
        (from S3) a WebVTT segment's cues not read again. An object replaced at its key gets its resources made
        afresh, the same as those of a key that always held the new bytes."""
        key = "kept/subs.mp4"
        self.storage.put(key, self.sources["subs.mp4"].read_bytes())
        master = self.playlist(self.hls(key, "master.m3u8"))
        subtitles = re.search(r'TYPE=SUBTITLES,.*URI="(\d+)\.m3u8"', master).group(1)
        resources = ["master.m3u8", "1.m3u8", f"{subtitles}.m3u8", "1/init.mp4", "1/seg-0.m4s", "1/seg-1.m4s",
                     "2/seg-1.m4s", f"{subtitles}/seg-0.vtt", f"{subtitles}/seg-1.vtt", f"{subtitles}/whole.vtt",
                     "manifest.mpd"]
        first = {}
        for resource in resources:
            with self.subTest(resource=resource):
                made = self.get(self.hls(key, resource))
                self.assertEqual(made.status, 200, made.describe())
                # The server's GET counter also counts the library's background probes of this class's other
                # objects: a kept file is read again with no GET in at least one of three tries, where one
                # that read its cues again would cost GETs every time.
                counted = harness.STORAGE_MODE == "s3" and resource.endswith(".vtt")
                for _ in range(3 if counted else 1):
                    gets = s3_counters(self.port)[0] if counted else None
                    again = self.get(self.hls(key, resource))
                    self.assertEqual((again.status, again.body, again.header("etag")),
                                     (200, made.body, made.header("etag")))
                    if gets is None or s3_counters(self.port)[0] == gets:
                        break
                if gets is not None:
                    self.assertEqual(s3_counters(self.port)[0], gets, "a kept WebVTT file read its cues again")
                r = self.get(self.hls(key, resource), [("Range", "bytes=5-40")])
                self.assertEqual((r.status, r.body), (206, made.body[5:41]))
                first[resource] = made
        # Replaced: a server that looks the object up again on every request (S3: no metadata kept) sees the new
        # version at once, and must not serve what it made of the old one.
        args = ["--s3-meta-ttl", "0"] if harness.STORAGE_MODE == "s3" else []
        server = test_api.start_server(self.storage, args, type(self).__name__ + "-replaced")
        try:
            def get(target: str) -> rawhttp.Response:
                with rawhttp.Connection(server.port) as conn:
                    return conn.request("GET", target)
            old = {resource: get(self.hls(key, resource)) for resource in ("master.m3u8", "1/seg-0.m4s")}
            for resource, r in old.items():
                self.assertEqual((r.status, r.body), (200, first[resource].body))
                self.assertEqual(get(self.hls(key, resource)).body, r.body)  # kept
            self.storage.put(key, self.sources["two-audio.mp4"].read_bytes())
            for resource in ("master.m3u8", "1.m3u8", "1/init.mp4", "1/seg-0.m4s", "2/seg-1.m4s", "manifest.mpd"):
                with self.subTest(resource=resource, replaced=True):
                    now = get(self.hls(key, resource))
                    self.assertEqual(now.status, 200, now.describe())
                    self.assertNotEqual(now.header("etag"), first[resource].header("etag"))
                    self.assertEqual(now.body, get(self.hls("two-audio.mp4", resource)).body)
            # (Both files have the same video, so only some resources differ in their bytes.)
            self.assertNotEqual(get(self.hls(key, "master.m3u8")).body, first["master.m3u8"].body)
            r = get(self.hls(key, f"{subtitles}/seg-0.vtt"))
            self.assertEqual(r.status, 404, r.describe())  # the new file has no such track
        finally:
            server.stop()

    def test_what_is_not_repackaged_says_why(self) -> None:
        for key, status, reason in (("clip.webm", 415, "WebM"), ("image.jpg", 415, "not an MP4")):
            with self.subTest(key=key):
                r = self.get(self.hls(key, "master.m3u8"))
                self.assertEqual(r.status, status, r.describe())
                self.assertIn(reason, r.body.decode())
        for target, status in ((self.hls("missing.mp4", "master.m3u8"), 404),
                               (self.hls("clip.mp4", "9.m3u8"), 404),
                               (self.hls("clip.mp4", "1/seg-99.m4s"), 404),
                               (self.hls("clip.mp4", "1/other.bin"), 404),
                               (self.hls(".hidden.mp4", "master.m3u8"), 404)):
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual(r.status, status, r.describe())
        for key, (_, status, reason) in self.hostile.items():
            with self.subTest(key=key):
                for resource in ("master.m3u8", "1/seg-0.m4s", "manifest.mpd"):
                    r = self.get(self.hls(key, resource))
                    self.assertEqual(r.status, status, r.describe())
                    self.assertIn(reason, r.body.decode(), r.describe())
        r = self.get(self.hls("clip.mp4", "master.m3u8"), method="DELETE")
        self.assertEqual(r.status, 405)


if __name__ == "__main__":
    unittest.main()


def s3_counters(port: int) -> tuple[int, int]:
    """The server's GetObject requests and body bytes received from S3 so far (/metrics)."""
    with rawhttp.Connection(port) as conn:
        text = conn.request("GET", "/metrics").body.decode()
    gets = int(float(re.search(r"^mediagate_s3_get_requests_total (\S+)$", text, re.M).group(1)))
    received = int(float(re.search(r"^mediagate_s3_received_bytes_total (\S+)$", text, re.M).group(1)))
    return gets, received


def sample_count(segment: bytes) -> int:
    """The samples of a media segment (its trun's sample_count)."""
    at = segment.index(b"trun")
    return int.from_bytes(segment[at + 8:at + 12], "big")


def mdat_payload(segment: bytes) -> int:
    moof = int.from_bytes(segment[0:4], "big")
    return int.from_bytes(segment[moof:moof + 4], "big") - 8


if harness.STORAGE_MODE == "s3":
    class HlsS3EconomyTest(unittest.TestCase):
        """What a segment costs in S3 requests and bytes: cold without a cache, cold into the slice cache, then
        warm from it. Every video and audio segment of two files (one with two audio tracks)."""

        KEYS = ("clip.mp4", "two-audio.mp4")

        @classmethod
        def setUpClass(cls) -> None:
            cls.storage = test_api.Storage(cls.__name__)
            cls.storage.put("clip.mp4", (harness.build_cache() / "clip.mp4").read_bytes())
            cls.storage.put("two-audio.mp4", (extra_fixtures() / "two-audio.mp4").read_bytes())
            cls.storage.put("leave/two-audio.mp4", (extra_fixtures() / "two-audio.mp4").read_bytes())
            cls.cache_dir = cls.storage.tmp / "slice-cache"
            cls.plain = test_api.start_server(cls.storage, [], cls.__name__ + "-plain")
            cls.cached = test_api.start_server(cls.storage, ["--cache-dir", str(cls.cache_dir)],
                                               cls.__name__ + "-cached")

        @classmethod
        def tearDownClass(cls) -> None:
            try:
                for server in (cls.plain, cls.cached):
                    server.stop()
            finally:
                cls.storage.cleanup()

        def fetch(self, port: int, key: str, resource: str) -> bytes:
            with rawhttp.Connection(port) as conn:
                r = conn.request("GET", f"/hls/{key}/{resource}")
            self.assertEqual(r.status, 200, r.describe())
            return r.body

        def segments(self, port: int, key: str) -> list[str]:
            """Every media segment of every track (the index read and kept by the server on the way)."""
            master = self.fetch(port, key, "master.m3u8").decode()
            out = []
            for track in sorted(set(re.findall(r"^(\d+)\.m3u8$", master, re.M) +
                                    re.findall(r'URI="(\d+)\.m3u8"', master))):
                playlist = self.fetch(port, key, f"{track}.m3u8").decode()
                out += re.findall(r"^(\d+/seg-\d+\.m4s)$", playlist, re.M)
            return out

        def cold(self, port: int, key: str, resource: str) -> tuple[bytes, int, int]:
            before = s3_counters(port)
            t0 = time.monotonic()
            body = self.fetch(port, key, resource)
            self.elapsed_ms = (time.monotonic() - t0) * 1000
            after = s3_counters(port)
            return body, after[0] - before[0], after[1] - before[1]

        def cold_within_budget(self, port: int, key: str, resource: str, label: str) -> tuple[bytes, int, int]:
            """A cold segment, and what it took from S3: at least its sample bytes, at most 1.1 times them."""
            body, gets, received = self.cold(port, key, resource)
            payload = mdat_payload(body)
            print(f"  figure: cold {key} {resource} ({label}): {gets} GET, {received} bytes from S3 for {payload} "
                  f"bytes of samples ({received / payload:.3f}x) in {self.elapsed_ms:.0f} ms")
            self.assertGreaterEqual(received, payload)
            self.assertLessEqual(received, payload * 1.1)
            return body, gets, received

        def test_cold_segments_read_at_most_a_tenth_more_than_their_samples(self) -> None:
            for key in self.KEYS:
                segments = self.segments(self.plain.port, key)
                self.assertGreaterEqual(len(segments), 4)  # 2 segments of video, 2 of each audio track
                for resource in segments:
                    with self.subTest(key=key, resource=resource):
                        body, gets, received = self.cold_within_budget(self.plain.port, key, resource, "no cache")
                        # The test files interleave audio and video frame by frame: an audio segment's runs are
                        # one or two packets between video frames, so within 1.1x it takes a GET per run (issued
                        # several at a time); never one per sample.
                        self.assertGreaterEqual(gets, 1)
                        self.assertLessEqual(gets, sample_count(body))
                        # No cache: the same segment again costs the same again, and is the same bytes.
                        again, gets2, received2 = self.cold(self.plain.port, key, resource)
                        self.assertEqual(again, body)
                        self.assertEqual((gets2, received2), (gets, received))

        def test_segments_through_the_slice_cache_cold_then_warm(self) -> None:
            for key in self.KEYS:
                segments = self.segments(self.cached.port, key)
                bodies = {}
                for resource in segments:
                    with self.subTest(key=key, resource=resource, cache="cold"):
                        body, gets, received = self.cold_within_budget(self.cached.port, key, resource,
                                                                       "slice cache")
                        # The same bytes as without a cache (deterministic: a CDN may mix the two).
                        self.assertEqual(body, self.fetch(self.plain.port, key, resource))
                        bodies[resource] = body
                before = s3_counters(self.cached.port)
                for resource in segments:
                    with self.subTest(key=key, resource=resource, cache="warm"):
                        self.assertEqual(self.fetch(self.cached.port, key, resource), bodies[resource])
                        # A range of a warm segment, across the moof and the samples, is warm too.
                        with rawhttp.Connection(self.cached.port) as conn:
                            r = conn.request("GET", f"/hls/{key}/{resource}", [("Range", "bytes=100-5000")])
                        self.assertEqual(r.status, 206, r.describe())
                        self.assertEqual(r.body, bodies[resource][100:5001])
                for resource in ("master.m3u8", "1/init.mp4"):
                    self.fetch(self.cached.port, key, resource)
                self.assertEqual(s3_counters(self.cached.port), before, "a warm segment read from S3")

        def test_a_client_leaving_mid_segment_cancels_its_reads(self) -> None:
            """An audio segment's many GETs, several in flight, abandoned when the client goes: the server
            stays up, keeps no reads running for long, and still serves the whole segment."""
            import socket
            key, resource = "leave/two-audio.mp4", "2/seg-0.m4s"  # a key of its own: the other tests' stay cold
            expected = self.fetch(self.plain.port, key, resource)
            for port in (self.plain.port, self.cached.port):
                for _ in range(5):
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                        s.sendall(f"GET /hls/{key}/{resource} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                        s.recv(2000)  # the head and a few bytes, then gone
                # The reads stop once the server sees the clients gone: two readings 0.5 s apart agree within
                # 5 s (a sanitizer build on a busy machine takes more than the first 0.5 s to see it).
                deadline = time.monotonic() + 5
                gets = s3_counters(port)[0]
                while True:
                    time.sleep(0.5)
                    latest = s3_counters(port)[0]
                    if latest == gets:
                        break
                    self.assertLess(time.monotonic(), deadline, "reads went on after the clients left")
                    gets = latest
                self.assertEqual(self.fetch(port, key, resource), expected)
            for server in (self.plain, self.cached):
                self.assertTrue(server.alive())

        def test_index_on_disk_survives_a_restart(self) -> None:
            """--hls-index-dir: after a restart, the first playlist request of a known object reads no moov from
            S3 (no GET: the HEAD that gives size and ETag only); a damaged index file is not trusted but rebuilt.
            With --cache-dir alone, the index files go under it (hls-index/)."""
            index_dir = self.storage.tmp / "hls-index"

            def serve(name: str):
                return test_api.start_server(self.storage, ["--hls-index-dir", str(index_dir)],
                                             f"{type(self).__name__}-{name}")

            def playlists(server) -> tuple[int, str]:
                before = s3_counters(server.port)
                text = (self.fetch(server.port, "clip.mp4", "master.m3u8").decode() +
                        self.fetch(server.port, "clip.mp4", "1.m3u8").decode())
                return s3_counters(server.port)[0] - before[0], text

            first = serve("first")
            try:
                gets, expected = playlists(first)
            finally:
                first.stop()
            self.assertGreaterEqual(gets, 1)  # the moov read from S3
            files = list(index_dir.glob("*.moov"))
            self.assertEqual(len(files), 1, list(index_dir.iterdir()))
            again = serve("restarted")
            try:
                gets, text = playlists(again)
            finally:
                again.stop()
            self.assertEqual(text, expected)
            self.assertEqual(gets, 0, "the index was read from S3 again after a restart")
            print(f"  figure: after a restart, master.m3u8 + 1.m3u8: {gets} GET from S3")
            # A flipped bit in the file: ignored, read from S3 again, and written anew.
            data = bytearray(files[0].read_bytes())
            data[len(data) // 2] ^= 0x10
            files[0].write_bytes(bytes(data))
            damaged = serve("damaged")
            try:
                gets, text = playlists(damaged)
            finally:
                damaged.stop()
            self.assertEqual(text, expected)
            self.assertGreaterEqual(gets, 1)
            self.assertNotEqual(files[0].read_bytes(), bytes(data))
            # The cached server (--cache-dir) of this class keeps its index files in its cache directory.
            self.fetch(self.cached.port, "clip.mp4", "master.m3u8")
            self.assertTrue(list((self.cache_dir / "hls-index").glob("*.moov")))
