"""Load the converted Whisper model safely, and check it against the CTranslate2 original.

- load_whisper(folder): proves the files intact (sha256 against the folder's install
  record or build manifest) and of the layout sherpa-onnx expects (ONNX inputs, outputs
  and metadata) *before* sherpa-onnx sees them: sherpa-onnx exits the whole process when
  a metadata key is missing, and a flipped weight byte would load silently.
- SherpaTranscriber, and Ct2Transcriber (the reference, callcue.daemon.eval.ct2_reference):
  the same audio through sherpa-onnx and through faster-whisper (CTranslate2), both
  greedy, English, no timestamps.
- word error rates counted as `callcue score-asr` counts them (callcue.daemon.eval.wer).
- espeak_corpus(): call-centre English sentences (no numbers: Whisper writes digits)
  spoken by espeak-ng at 16 kHz, or at 8 kHz telephone band resampled back up to 16 kHz.

Build-time and test tooling: needs sherpa-onnx and the `onnx` package; the CTranslate2
side needs faster-whisper (optional dependency group "convert").
"""
from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..daemon.eval.ct2_reference import Ct2Transcriber
from ..daemon.eval.synth.render import synth_speech
from ..daemon.eval.synth.script import BASE_VOICE, DEFAULT_SPEED, DEFAULT_VARIANT, ResolvedParams
from ..daemon.eval.wer import Tally
from .files import sha256_file
from .whisper_layout import (DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS,
                            REQUIRED_METADATA)

SAMPLE_RATE = 16000
BUILD_MANIFEST = "convert-manifest.json"
INSTALLED_JSON = "installed.json"
PREFIX = "tiny.en"
# Silence around each synthetic sentence, as a VAD segment with pre/post-roll has.
PAD_S = 0.3

# Call-centre English without numbers (Whisper writes "3" for "three", which is not
# what this check measures). Agent and customer turns alternate.
SENTENCES = [
    "Thank you for calling customer service, my name is Sarah, how can I help you today?",
    "Hi, I am calling because my internet connection keeps dropping every evening.",
    "I am sorry to hear that, can you please confirm the name on the account?",
    "The account is under my husband's name, Michael Johnson.",
    "Thank you, I can see the account now, let me check the line for you.",
    "I have already restarted the router several times and nothing changes.",
    "I understand, I am running a remote test on your connection right now.",
    "Will this take long? I have a meeting in a few minutes.",
    "It should only take a moment, please stay on the line.",
    "The test shows some noise on the line, so I will book a technician visit.",
    "Can the technician come tomorrow morning?",
    "Yes, tomorrow morning is available, you will receive a confirmation email.",
    "Will I be charged for the visit?",
    "No, there is no charge because the problem is on our side.",
    "That is good news, I was worried about an extra fee on my bill.",
    "Is there anything else I can help you with today?",
    "I would also like to update my billing address.",
    "Of course, please tell me the new address and I will change it for you.",
    "I want to cancel my premium plan at the end of this month.",
    "I have noted your request, thank you for your patience and have a nice day.",
]


class WhisperModelError(Exception):
    """The converted model is missing, corrupt, or not in sherpa-onnx's Whisper layout."""


@dataclass(frozen=True)
class WhisperFiles:
    directory: Path
    encoder: Path
    decoder: Path
    tokens: Path


def model_prefix(folder: Path) -> str:
    """The file prefix of the converted Whisper in a folder ("tiny.en", "base", ...)."""
    found = sorted(p.name.split("-encoder")[0] for p in folder.glob("*-encoder*.onnx"))
    return found[0] if found else PREFIX


def model_files(folder: str | Path) -> WhisperFiles:
    """The encoder, decoder and tokens file of a converted model folder (int8 preferred)."""
    d = Path(folder)
    if not d.is_dir():
        raise WhisperModelError(f"{d}: no such model folder; build it with: callcue models convert whisper-tiny.en")
    prefix = model_prefix(d)

    def pick(*names: str) -> Path:
        for n in names:
            if (d / n).is_file():
                return d / n
        raise WhisperModelError(f"{d}: missing {' or '.join(names)}; rebuild with: "
                                f"callcue models convert whisper-tiny.en --force")

    return WhisperFiles(d, pick(f"{prefix}-encoder.int8.onnx", f"{prefix}-encoder.onnx"),
                        pick(f"{prefix}-decoder.int8.onnx", f"{prefix}-decoder.onnx"),
                        pick(f"{prefix}-tokens.txt"))


def recorded_checksums(folder: Path) -> tuple[Path, dict[str, str]] | None:
    """(record file, path -> sha256) from installed.json or the build manifest, if any."""
    for name in (INSTALLED_JSON, BUILD_MANIFEST):
        p = folder / name
        if p.is_file():
            try:
                files = json.loads(p.read_text(encoding="utf-8"))["files"]
                return p, {f["path"]: f["sha256"] for f in files}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise WhisperModelError(f"{p}: damaged file list ({exc}); rebuild with: "
                                        f"callcue models convert whisper-tiny.en --force") from None
    return None


def verify_checksums(files: WhisperFiles) -> None:
    rec = recorded_checksums(files.directory)
    if rec is None:
        raise WhisperModelError(f"{files.directory}: no {INSTALLED_JSON} or {BUILD_MANIFEST}, so nothing vouches "
                                f"for the files; rebuild with: callcue models convert whisper-tiny.en")
    record, shas = rec
    for path in (files.encoder, files.decoder, files.tokens):
        want = shas.get(path.name)
        if want is None:
            raise WhisperModelError(f"{path}: not listed in {record}; rebuild the model")
        got = sha256_file(path)
        if got != want:
            raise WhisperModelError(f"{path}: sha256 {got} but {record.name} records {want}: the file is corrupt "
                                    f"or was changed; rebuild with: callcue models convert whisper-tiny.en --force")


def _onnx_graph(path: Path, inputs: list[str], outputs: list[str], optional_outputs: list[str] = ()):
    try:
        import onnx
    except ImportError:
        raise WhisperModelError("checking the model needs the `onnx` package: pip install -e '.[convert]'") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError, onnx others
        raise WhisperModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != inputs or got_out[:len(outputs)] != outputs or got_out[len(outputs):] not in (
            [], list(optional_outputs)):
        want = outputs + [f"[{o}]" for o in optional_outputs]
        raise WhisperModelError(f"{path}: not a sherpa-onnx Whisper graph: inputs {got_in}, outputs {got_out}; "
                                f"expected inputs {inputs}, outputs {want}")
    return model


def check_layout(files: WhisperFiles) -> dict[str, str]:
    """Inputs, outputs and metadata as sherpa-onnx reads them; returns the encoder metadata."""
    enc = _onnx_graph(files.encoder, ENCODER_INPUTS, ENCODER_OUTPUTS)
    meta = {p.key: p.value for p in enc.metadata_props}
    del enc
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise WhisperModelError(f"{files.encoder}: metadata lacks {', '.join(missing)} (sherpa-onnx needs them)")
    bad = [k for k in REQUIRED_METADATA if k != "sot_sequence" and not meta[k].lstrip("-").isdigit()]
    if bad:
        raise WhisperModelError(f"{files.encoder}: metadata {', '.join(bad)} must be integers")
    # the alignment-head output is optional: sherpa-onnx's own release has none (no token times)
    _onnx_graph(files.decoder, DECODER_INPUTS, DECODER_OUTPUTS[:3], DECODER_OUTPUTS[3:])
    n = 0
    with open(files.tokens, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise WhisperModelError(f"{files.tokens}:{n}: expected 'BASE64 ID', got {line.rstrip()!r}")
    if n != int(meta["eot"]):
        raise WhisperModelError(f"{files.tokens}: {n} tokens, the model's text tokens are 0..{int(meta['eot']) - 1}")
    return meta


class SherpaTranscriber:
    """The converted model through sherpa-onnx's OfflineRecognizer (greedy search)."""

    def __init__(self, folder: str | Path, num_threads: int = 2, verify: bool = True, language: str = "en"):
        self.files = model_files(folder)
        if verify:
            verify_checksums(self.files)
        self.metadata = check_layout(self.files)
        import sherpa_onnx
        self._sherpa = sherpa_onnx
        try:
            self.rec = sherpa_onnx.OfflineRecognizer.from_whisper(
                encoder=str(self.files.encoder), decoder=str(self.files.decoder), tokens=str(self.files.tokens),
                language=language, task="transcribe", num_threads=num_threads, decoding_method="greedy_search")
        except Exception as exc:  # sherpa-onnx raises RuntimeError/ValueError from C++
            raise WhisperModelError(f"sherpa-onnx cannot load {self.files.directory}: {exc}") from None

    def transcribe(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        s = self.rec.create_stream()
        s.accept_waveform(sample_rate, np.ascontiguousarray(samples, dtype=np.float32))
        self.rec.decode_stream(s)
        return s.result.text.strip()


# ---------------------------------------------------------------- audio

def read_audio(path: str | Path) -> np.ndarray:
    """Any audio file as 16 kHz mono float32 (decoded and resampled by PyAV, as faster-whisper does)."""
    try:
        from faster_whisper.audio import decode_audio
    except ImportError:
        raise WhisperModelError("reading audio files needs faster-whisper: pip install -e '.[convert]'") from None
    p = Path(path)
    if not p.is_file():
        raise WhisperModelError(f"{p}: no such audio file")
    try:
        return decode_audio(str(p), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises many kinds for a bad file
        raise WhisperModelError(f"{p}: cannot decode audio ({type(exc).__name__}: {exc})") from None


def upsample_to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample with sox (the same tool that made the 8 kHz audio)."""
    if rate == SAMPLE_RATE:
        return samples
    proc = subprocess.run(["sox", "-V1", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(rate),
                           "-", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-", "rate", "-v",
                           str(SAMPLE_RATE)], input=samples.astype("<f4").tobytes(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise WhisperModelError(f"sox resampling failed: {proc.stderr.decode(errors='replace').strip()}")
    return np.frombuffer(proc.stdout, dtype="<f4").copy()


AGENT_VOICE = BASE_VOICE["en"] + DEFAULT_VARIANT["agent"]
CUSTOMER_VOICE = BASE_VOICE["en"] + DEFAULT_VARIANT["customer"]
# --all-voices: every sentence in each of these (espeak-ng variants: two male, two female)
ALL_VOICES = (AGENT_VOICE, CUSTOMER_VOICE, "en-us+m3", "en-us+f2")


def espeak_sentence(text: str, rate: int, voice: str = AGENT_VOICE) -> np.ndarray:
    """One sentence spoken by espeak-ng at ``rate`` (8 kHz: telephone band), returned at 16 kHz."""
    params = ResolvedParams(voice=voice, speed=DEFAULT_SPEED["en"], pitch=50, amplitude=100)
    x = upsample_to_16k(synth_speech(text, params, rate, what="check sentence"), rate)
    pad = np.zeros(int(PAD_S * SAMPLE_RATE), np.float32)
    return np.concatenate([pad, x, pad])


def espeak_corpus(rate: int, sentences: list[str] = SENTENCES,
                  voices: tuple[str, ...] | None = None) -> list[tuple[str, str, np.ndarray]]:
    """(voice, text, 16 kHz samples): agent and customer voices alternating, or with
    ``voices`` every sentence in each voice."""
    if voices is None:
        plan = [(CUSTOMER_VOICE if i % 2 else AGENT_VOICE, t) for i, t in enumerate(sentences)]
    else:
        plan = [(v, t) for v in voices for t in sentences]
    with ThreadPoolExecutor(max_workers=4) as pool:   # each is its own espeak-ng + sox process
        audio = list(pool.map(lambda vt: espeak_sentence(vt[1], rate, vt[0]), plan))
    return [(v, t, x) for (v, t), x in zip(plan, audio)]


# ---------------------------------------------------------------- comparison

@dataclass
class Comparison:
    """Both systems on the same utterances."""

    label: str
    source_rate: int | None = None          # rate the espeak audio was made at, before resampling
    rows: list[dict] = field(default_factory=list)
    ct2_vs_ref: Tally = field(default_factory=Tally)
    sherpa_vs_ref: Tally = field(default_factory=Tally)
    sherpa_vs_ct2: Tally = field(default_factory=Tally)
    ct2_seconds: float = 0.0
    sherpa_seconds: float = 0.0
    audio_seconds: float = 0.0

    @property
    def has_reference(self) -> bool:
        return self.ct2_vs_ref.words > 0

    def summary(self) -> dict:
        out = {"label": self.label, "source_rate": self.source_rate, "utterances": len(self.rows), "audio_s": round(self.audio_seconds, 1),
               "wer_sherpa_vs_ct2": round(self.sherpa_vs_ct2.wer, 4),
               "ct2_rtf": round(self.ct2_seconds / self.audio_seconds, 4) if self.audio_seconds else None,
               "sherpa_rtf": round(self.sherpa_seconds / self.audio_seconds, 4) if self.audio_seconds else None}
        if self.has_reference:
            out.update(wer_ct2_vs_ref=round(self.ct2_vs_ref.wer, 4), wer_sherpa_vs_ref=round(self.sherpa_vs_ref.wer, 4),
                       reference_words=self.ct2_vs_ref.words)
        return out


def compare(label: str, items: list[tuple[str, np.ndarray, str | None]], ct2: Ct2Transcriber,
            sherpa: SherpaTranscriber, source_rate: int | None = None) -> Comparison:
    """items: (name, 16 kHz samples, reference text or None)."""
    c = Comparison(label, source_rate)
    for name, samples, ref in items:
        t0 = time.perf_counter()
        a = ct2.transcribe(samples)
        t1 = time.perf_counter()
        b = sherpa.transcribe(samples)
        t2 = time.perf_counter()
        c.ct2_seconds += t1 - t0
        c.sherpa_seconds += t2 - t1
        c.audio_seconds += len(samples) / SAMPLE_RATE
        row = {"name": name, "ct2": a, "sherpa": b, "wer_sherpa_vs_ct2": round(c.sherpa_vs_ct2.add(a, b), 4)}
        if ref:
            row.update(reference=ref, wer_ct2=round(c.ct2_vs_ref.add(ref, a), 4),
                       wer_sherpa=round(c.sherpa_vs_ref.add(ref, b), 4))
        c.rows.append(row)
    return c


def format_comparison(c: Comparison, verbose: bool = True) -> str:
    lines = [f"== {c.label}"]
    if verbose:
        for r in c.rows:
            lines.append(f"-- {r['name']}")
            if "reference" in r:
                lines.append(f"   reference : {r['reference']}")
            lines.append(f"   ctranslate2: {r['ct2']}" + (f"   [WER {r['wer_ct2']:.1%}]" if "wer_ct2" in r else ""))
            lines.append(f"   sherpa int8: {r['sherpa']}"
                         + (f"   [WER {r['wer_sherpa']:.1%}]" if "wer_sherpa" in r else "")
                         + f"   [vs ctranslate2 {r['wer_sherpa_vs_ct2']:.1%}]")
    s = c.summary()
    lines.append(f"   {s['utterances']} utterances, {s['audio_s']} s of audio")
    if c.has_reference:
        lines.append(f"   WER vs reference ({s['reference_words']} words): ctranslate2 {c.ct2_vs_ref.wer:.2%}, "
                     f"sherpa-onnx {c.sherpa_vs_ref.wer:.2%} (difference "
                     f"{(c.sherpa_vs_ref.wer - c.ct2_vs_ref.wer) * 100:+.2f} points)")
    lines.append(f"   WER of sherpa-onnx against ctranslate2's text: {c.sherpa_vs_ct2.wer:.2%}")
    lines.append(f"   real-time factor: ctranslate2 {s['ct2_rtf']}, sherpa-onnx {s['sherpa_rtf']}")
    return "\n".join(lines)
