"""Augmentations that keep annotations exact: ``(audio, events, rng) -> (audio, events)``.

Every transform takes a float32 waveform ``(n_samples,)`` at its config's ``sample_rate``, the
canonical event table (times in seconds from the first sample) and an explicit
:class:`numpy.random.Generator`; it returns new audio and an event table whose times follow the
audio exactly (integer-sample shifts; see :mod:`.core` for ``kept_fraction`` and ``audible``).

- :mod:`.core`: :class:`Compose`, :class:`RandomApply`, :class:`TimeShift`, :class:`RandomGain`.
- :mod:`.mixing`: :func:`mix` / :class:`Mix` (snippet at an SNR), :func:`stitch` (crossfades),
  :func:`make_bout`, :func:`long_call`.
- :mod:`.envelope`: :class:`AmplitudeEnvelope` (approach / recede, dB ramps or 1/r, air absorption).
- :mod:`.noise`: :class:`AddNoise` (white / pink / brown / real background at an SNR),
  :func:`reduce_noise` and :class:`NoiseReduction` (spectral gating).
- :mod:`.spectral`: :func:`spec_augment`, :func:`mixup`, :func:`mixup_batch`, and
  :func:`choose_n_fft` / :class:`NFFTJitter` — one FFT window per batch; the mel front end keeps
  ``n_mels`` and the hop fixed, so the patch grid is the same for every ``n_fft`` and only the
  time/frequency resolution inside each patch changes (finer frequency with a long window, finer
  time with a short one).

Example::

    pipeline = Compose([
        Mix(MixConfig(sample_rate=32000, snr_db=(0, 20)), pool=snippets),
        RandomApply(AddNoise(NoiseConfig(snr_db=(10, 30))), p=0.5),
        AmplitudeEnvelope(EnvelopeConfig(sample_rate=32000)),
        TimeShift(TimeShiftConfig(sample_rate=32000, max_shift_s=2.0)),
        RandomGain(GainConfig(-6, 6)),
    ])
    audio, events = pipeline(audio, events, np.random.default_rng(seed))
"""

from biomae.augment.core import (
    Compose,
    GainConfig,
    RandomApply,
    RandomGain,
    TimeShift,
    TimeShiftConfig,
    Transform,
    clip_events,
    ensure_columns,
    shift_events,
    time_shift,
)
from biomae.augment.envelope import AmplitudeEnvelope, EnvelopeConfig, apply_envelope
from biomae.augment.mixing import (
    Mix,
    MixConfig,
    active_mask,
    long_call,
    make_bout,
    mix,
    snr_gain,
    stitch,
)
from biomae.augment.noise import (
    AddNoise,
    NoiseConfig,
    NoiseReduction,
    NoiseReductionConfig,
    add_noise,
    colored_noise,
    reduce_noise,
)
from biomae.augment.spectral import (
    NFFTJitter,
    SpecAugmentConfig,
    choose_n_fft,
    mixup,
    mixup_batch,
    spec_augment,
)

__all__ = [
    "AddNoise",
    "AmplitudeEnvelope",
    "Compose",
    "EnvelopeConfig",
    "GainConfig",
    "Mix",
    "MixConfig",
    "NFFTJitter",
    "NoiseConfig",
    "NoiseReduction",
    "NoiseReductionConfig",
    "RandomApply",
    "RandomGain",
    "SpecAugmentConfig",
    "TimeShift",
    "TimeShiftConfig",
    "Transform",
    "active_mask",
    "add_noise",
    "apply_envelope",
    "choose_n_fft",
    "clip_events",
    "colored_noise",
    "ensure_columns",
    "long_call",
    "make_bout",
    "mix",
    "mixup",
    "mixup_batch",
    "reduce_noise",
    "shift_events",
    "snr_gain",
    "spec_augment",
    "stitch",
    "time_shift",
]
