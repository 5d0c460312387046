"""Audio on the line: 8 kHz, 16-bit signed mono, 20 ms frames of 160 samples.

Everything inside the box is int16 numpy at the line rate; conversion to the
rates models want (16 kHz for VAD/ASR, 24 kHz out of Kokoro) happens only at the
model boundary, through soxr (band-limited, never ``np.interp``, which aliases).
"""

from typing import Final

LINE_RATE_HZ: Final = 8000
FRAME_MS: Final = 20
FRAME_SAMPLES: Final = LINE_RATE_HZ * FRAME_MS // 1000  # 160
MODEL_RATE_HZ: Final = 16000  # silero VAD and Whisper both want 16 kHz
