"""Frames of a video by timestamp: an mp4 (or any file FFmpeg reads) through PyAV, or a folder of frames.

A ``Video`` snaps every timestamp to a frame index (``floor(t * fps)``), so "a frame" means one decoded
picture wherever it is asked for: an agent's frame budget counts unique indices. Decoded frames are
kept, so asking twice decodes once. A file that is missing, empty, corrupt or not a video is one
``UserError`` line.
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path
from typing import Optional, Sequence

from mmthink.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class Video:
    """Uniform access to ``n_frames`` frames at ``fps``; subclasses decode."""

    def __init__(self, name: str, n_frames: int, fps: float, timestamps: Optional[Sequence[float]] = None):
        if n_frames < 1:
            raise UserError(f"{name}: the video has no frames")
        self.name, self.n_frames, self.fps = name, n_frames, fps
        # A folder may carry its own timestamps (e.g. key frames); otherwise frame i is at i / fps.
        self.times = list(timestamps) if timestamps is not None else [i / fps for i in range(n_frames)]
        self._cache: dict = {}

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last one."""
        return self.times[-1] + 1.0 / self.fps

    def index(self, t: float) -> int:
        """The frame shown at time ``t`` (the last frame starting at or before it), clamped to the video."""
        return max(0, min(self.n_frames - 1, bisect.bisect_right(self.times, t + 1e-9) - 1))

    def frame(self, i: int):
        """Frame ``i`` as an RGB PIL image."""
        if i not in self._cache:
            self._cache[i] = self._decode(i)
        return self._cache[i]

    def _decode(self, i: int):
        raise NotImplementedError


class FileVideo(Video):
    """A video file read with PyAV; seeking lands on the key frame before ``t`` and decodes forward."""

    def __init__(self, path: Path):
        try:
            import av
        except ImportError:
            raise UserError("reading video files needs PyAV: pip install av") from None
        self.path = path
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise UserError(f"{path}: no video stream")
                stream = container.streams.video[0]
                fps = float(stream.average_rate or stream.guessed_rate or 0)
                n = stream.frames
                if not n and stream.duration and stream.time_base:
                    n = int(float(stream.duration * stream.time_base) * fps)
                if not n:  # some containers do not say: count by decoding
                    n = sum(1 for _ in container.decode(stream))
        except UserError:
            raise
        except Exception as e:  # av.error.* for corrupt, truncated or unsupported files
            raise UserError(f"{path}: cannot be read as a video ({type(e).__name__}: {e})") from None
        if fps <= 0:
            raise UserError(f"{path}: the video stream has no frame rate")
        super().__init__(str(path), n, fps)

    def _decode(self, i: int):
        import av

        target = self.times[i]
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
                last = None
                for frame in container.decode(stream):
                    t = float(frame.pts * stream.time_base) if frame.pts is not None else None
                    last = frame
                    if t is not None and t >= target - 0.5 / self.fps:
                        break
        except Exception as e:
            raise UserError(f"{self.path}: frame at {target:.2f} s cannot be decoded ({type(e).__name__}: {e})") from None
        if last is None:
            raise UserError(f"{self.path}: no frame decodes at {target:.2f} s")
        return last.to_image().convert("RGB")

    def decode_all(self, every: int = 1) -> list:
        """Every ``every``-th frame in one pass (cheaper than seeking frame by frame), also kept."""
        import av

        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                if i >= self.n_frames:
                    break
                if i % every == 0 and i not in self._cache:
                    self._cache[i] = frame.to_image().convert("RGB")
        return [self._cache[i] for i in range(0, self.n_frames, every) if i in self._cache]


class FolderVideo(Video):
    """A folder of images in name order; ``timestamps.txt`` (one second-value per line) or ``fps`` places them."""

    def __init__(self, path: Path, fps: float = 1.0):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"{path}: the folder holds no frames ({', '.join(IMAGE_SUFFIXES)})")
        self.files = files
        times = None
        stamps = path / "timestamps.txt"
        if stamps.is_file():
            try:
                times = [float(line) for line in stamps.read_text().split()]
            except ValueError:
                raise UserError(f"{stamps}: every line must be a number of seconds") from None
            if len(times) != len(files) or any(b <= a for a, b in zip(times, times[1:])):
                raise UserError(f"{stamps}: needs one increasing timestamp per frame ({len(files)} frames)")
            fps = 1.0 / max(min((b - a for a, b in zip(times, times[1:])), default=1.0), 1e-6)
        super().__init__(str(path), len(files), fps, times)

    def _decode(self, i: int):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.files[i]) as im:
                return im.convert("RGB")
        except (UnidentifiedImageError, OSError):
            raise UserError(f"{self.files[i]}: not a readable image") from None


class SampledVideo(Video):
    """Only the frames of ``base`` at the given timestamps (key frames, a shot list) are candidates."""

    def __init__(self, base: Video, timestamps: Sequence[float]):
        bad = [t for t in timestamps if not 0 <= t < base.duration]
        if bad:
            raise UserError(f"{base.name}: timestamp {bad[0]:g} s is outside the video (0 to {base.duration:g} s)")
        self.base, self.indices = base, sorted({base.index(t) for t in timestamps})
        super().__init__(base.name, len(self.indices), base.fps, [base.times[i] for i in self.indices])

    @property
    def duration(self) -> float:
        return self.base.duration

    def _decode(self, i: int):
        return self.base.frame(self.indices[i])


def read_timestamps(text: str) -> list[float]:
    """Seconds as ``1.5,3,10`` or a file with one number per line (or comma-separated)."""
    source = Path(text).read_text() if Path(text).is_file() else text
    try:
        times = [float(v) for v in source.replace(",", " ").split()]
    except ValueError:
        raise UserError(f"timestamps must be numbers of seconds (comma-separated, or a file of them); got {text!r}") from None
    if not times:
        raise UserError(f"no timestamps in {text!r}")
    return times


def open_video(path: str | Path, fps: float = 1.0, timestamps: Optional[Sequence[float]] = None) -> Video:
    """A video file or a folder of frames (``fps`` places a folder's frames without timestamps.txt),
    restricted to the frames at ``timestamps`` when given."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file or folder")
    if p.is_dir():
        video: Video = FolderVideo(p, fps)
    elif p.stat().st_size == 0:
        raise UserError(f"{p}: the file is empty")
    else:
        video = FileVideo(p)
    return SampledVideo(video, timestamps) if timestamps else video


def uniform_times(start: float, end: float, n: int) -> list[float]:
    """``n`` timestamps spread evenly over [start, end], both ends included (one: the middle)."""
    if n <= 0:
        return []
    if n == 1:
        return [(start + end) / 2]
    step = (end - start) / (n - 1)
    return [start + k * step for k in range(n)]


def write_mp4(frames, path: Path, fps: int) -> None:
    """Encode RGB frames (PIL images of one size) as H.264 mp4 through PyAV, written to a temporary name first."""
    import av

    frames = list(frames)
    if not frames:
        raise ValueError("no frames to write")
    w, h = frames[0].size
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = w + (w % 2), h + (h % 2)
        stream.pix_fmt = "yuv420p"
        # Every frame a key frame at small sizes keeps seeking exact and cheap.
        stream.options = {"g": str(max(1, math.ceil(fps))), "crf": "18"}
        for im in frames:
            for packet in stream.encode(av.VideoFrame.from_image(im)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
