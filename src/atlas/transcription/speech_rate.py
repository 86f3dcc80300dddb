"""How fast speech is, read from the audio alone (no decoding): loudness peaks a second.

Small Whisper models mishear fast speech, and fast speech is transcribed better
slowed down; deciding that from a first decoding costs a whole decoding. This
estimate costs a band-pass filter and a peak count instead (after De Jong &
Wempe's syllable-nuclei method): the loudness of the speech band (300 - 3000
Hz) in 10 ms frames, smoothed, and its peaks that rise at least 2 dB above the
dips beside them and lie within 25 dB of the loudest frames; the rate is the
peaks over the time spent above that floor (pauses do not count).

Peaks are not exactly syllables (a long vowel may carry two), so the rate is in
its own unit, loudness peaks a second; ``transcription.fast_speech_peaks_per_second``
is the threshold in that unit. Sound under the speech (music, noise) fills the
dips and lowers the estimate, so such speech is rather decoded as it is than
slowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["loudness_peaks_per_second"]

SAMPLE_RATE = 16_000
_FRAME = SAMPLE_RATE // 100  # 10 ms
_BAND_HZ = (300.0, 3000.0)
#: Frames quieter than the loudest ones (their 99th percentile) by more than this are pauses.
_FLOOR_DB = 25.0
#: A peak must rise this far above the dips either side of it.
_PROMINENCE_DB = 2.0
#: Peaks closer than this are one (no syllable is shorter).
_MIN_GAP_FRAMES = 8
#: Audio filtered at a time (bounded memory for hours of audio).
_CHUNK = SAMPLE_RATE * 60


def loudness_peaks_per_second(audio: np.ndarray) -> float:
    """Loudness peaks a second of speech in 16 kHz mono ``audio`` (0.0 for silence or < 0.1 s)."""
    import numpy as np
    from scipy.signal import butter, find_peaks, sosfilt, sosfilt_zi

    frames = len(audio) // _FRAME
    if frames < 10:
        return 0.0
    sos = butter(4, _BAND_HZ, btype="bandpass", fs=SAMPLE_RATE, output="sos")
    state = sosfilt_zi(sos) * 0.0
    energy = np.empty(frames, dtype=np.float64)
    for first in range(0, frames, _CHUNK // _FRAME):
        last = min(frames, first + _CHUNK // _FRAME)
        piece = np.asarray(audio[first * _FRAME : last * _FRAME], dtype=np.float64)
        filtered, state = sosfilt(sos, piece, zi=state)
        energy[first:last] = np.mean(filtered.reshape(-1, _FRAME) ** 2, axis=1)
    loudness = 10.0 * np.log10(energy + 1e-10)
    window = np.hanning(7)
    loudness = np.convolve(loudness, window / window.sum(), mode="same")
    floor = float(np.quantile(loudness, 0.99)) - _FLOOR_DB
    speech_s = float(np.count_nonzero(loudness > floor)) / 100.0
    if speech_s <= 0 or float(np.max(energy)) < 1e-8:
        return 0.0
    peaks, _ = find_peaks(
        loudness, height=floor, prominence=_PROMINENCE_DB, distance=_MIN_GAP_FRAMES
    )
    return len(peaks) / speech_s
