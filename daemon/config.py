"""Site configuration: one YAML file per box, validated at start-up.

Every field has a description and a documented default (README, "Configuration").
Errors name the file, the line and the field (see yamlfile.py).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from .assist.redact import RedactionConfig
from .schema import Strict
from .yamlfile import ConfigError, load_model

SUPPORTED_RATES = (8000, 16000)
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # safe inside an MQTT topic level


def _topic_safe(value: str, what: str) -> str:
    if not ID_RE.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '_', '.', '-' (it is used in MQTT topics)")
    return value


class BrokerConfig(Strict):
    url: str = Field(description="mqtt://host:port or mqtts://host:port of the broker")
    username: str | None = Field(None, description="user name, if the broker requires one")
    password: str | None = Field(None, description="password, if the broker requires one")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval in seconds")
    ca_file: Path | None = Field(None, description="CA bundle for mqtts:// (system CAs when omitted)")
    certfile: Path | None = Field(None, description="mqtts://: client certificate (PEM) shown to a broker that asks for one")
    keyfile: Path | None = Field(None, description="mqtts://: private key of `certfile` (PEM; omit when the key is inside certfile)")
    credentials_file: Path | None = Field(None, description="credentials.yaml written by `callcue acl`: the password of `username` is read from it (instead of `password`)")
    legacy_cmd_topic: bool = Field(False, description="also take commands on line/{line}/cmd without a role, any op (for a CTI not yet moved to line/{line}/cmd/cti; no ACL protects it)")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError(f"broker url {v!r} must look like mqtt://host:1883 or mqtts://host:8883")
        try:
            u.port
        except ValueError:
            raise ValueError(f"broker url {v!r} has an invalid port") from None
        return v

    @model_validator(mode="after")
    def _tls_and_password(self) -> "BrokerConfig":
        if not self.tls and (self.certfile or self.keyfile or self.ca_file):
            raise ValueError("ca_file, certfile and keyfile need an mqtts:// url (TLS)")
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("keyfile is given without certfile")
        if self.credentials_file is not None and (self.username is None or self.password is not None):
            raise ValueError("credentials_file needs username (whose password it holds) and no password")
        return self

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        u = urlparse(self.url)
        return u.port or (8883 if u.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlparse(self.url).scheme == "mqtts"


class EmbeddedBrokerConfig(Strict):
    bind: str = Field("127.0.0.1", description="address the embedded Mosquitto listens on")
    port: int = Field(1883, ge=1, le=65535, description="port the embedded Mosquitto listens on")
    acl_dir: Path | None = Field(None, description="folder written by `callcue acl` (passwd, acl, credentials.yaml): the embedded broker takes only those users, each with its ACL, and the box connects as box-{box}; required when `bind` is not a loopback address")

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach the broker."""
        import ipaddress
        if self.bind == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.bind).is_loopback
        except ValueError:
            return False   # a host name or a wildcard reaches beyond this machine

    @model_validator(mode="after")
    def _no_anonymous_beyond_loopback(self) -> "EmbeddedBrokerConfig":
        if self.acl_dir is None and not self.loopback:
            raise ValueError(f"bind {self.bind!r} reaches beyond this machine, where anonymous clients are refused: "
                             f"set acl_dir to the folder `callcue acl --config SITE.yaml --out DIR` writes, "
                             f"or bind 127.0.0.1")
        return self


class SpeakerTap(Strict):
    """Where one speaker's audio comes from, when it is not the line's shared device/file."""

    device: str | None = Field(None, description="hardware profile name, or a substring of the PyAudio device name")
    wav: Path | None = Field(None, description="WAV file to replay for this speaker")
    channel: int = Field(0, ge=0, le=63, description="channel index on that device or file")

    @model_validator(mode="after")
    def _one(self) -> "SpeakerTap":
        if (self.device is None) == (self.wav is None):
            raise ValueError("give exactly one of 'device' or 'wav'")
        return self


class SourceConfig(Strict):
    device: str | None = Field(None, description="hardware profile name, or a substring of the PyAudio device name")
    wav: Path | None = Field(None, description="WAV file replayed as this line (for demos, tests, site checks)")
    pace: Literal["realtime", "fast"] = Field("realtime", description="WAV replay: real-time paced, or as fast as possible")
    loop: bool = Field(False, description="WAV replay: start again at the end (demo lines)")
    agent: int | SpeakerTap = Field(0, description="agent channel index, or a SpeakerTap with its own device/file")
    customer: int | SpeakerTap = Field(1, description="customer channel index, or a SpeakerTap with its own device/file")

    @model_validator(mode="after")
    def _where(self) -> "SourceConfig":
        if self.device is not None and self.wav is not None:
            raise ValueError("give 'device' or 'wav', not both")
        for who in ("agent", "customer"):
            if isinstance(getattr(self, who), int) and self.device is None and self.wav is None:
                raise ValueError(f"'{who}' is a channel index but the source has neither 'device' nor 'wav'")
        if isinstance(self.agent, int) and isinstance(self.customer, int) and self.agent == self.customer:
            raise ValueError("agent and customer are mapped to the same channel")
        return self

    def tap(self, speaker: str) -> SpeakerTap:
        """The resolved (device|wav, channel) of one speaker."""
        t = getattr(self, speaker)
        if isinstance(t, SpeakerTap):
            return t
        return SpeakerTap(device=self.device, wav=self.wav, channel=t)


class LineConfig(Strict):
    id: str = Field(description="line id, unique on the floor; used in MQTT topics")
    agent: str = Field("", description="agent name or id shown to supervisors (updated by call_start)")
    sample_rate: Literal[8000, 16000] = Field(8000, description="rate the line is captured at, Hz")
    source: SourceConfig = Field(description="where the line's audio comes from")
    team: str | None = Field(None, description="agent team; the content pack's `teams` may set its own alert thresholds")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _topic_safe(v, "line id")


class DetectorConfig(Strict):
    """Prosody alert thresholds. The defaults are the documented product defaults."""

    long_silence_s: float = Field(5.0, gt=0.5, le=120, description="both parties silent this long in a call -> long_silence")
    talk_over_s: float = Field(1.0, gt=0.1, le=10, description="both speaking at once this long -> talk_over")
    fast_speech_syl_s: float = Field(6.4, gt=2, le=15, description="agent syllables per second of speech above this -> fast_speech")
    fast_speech_min_s: float = Field(2.0, gt=0.5, le=30, description="speech needed before a rate is judged, seconds")
    agitation_pitch_st: float = Field(3.0, gt=0, le=24, description="pitch above the speaker's own baseline, semitones")
    agitation_loud_db: float = Field(2.5, gt=0, le=40, description="loudness above the speaker's own baseline, dB")
    agitation_min_s: float = Field(1.5, gt=0.2, le=30, description="sustained stretch needed for agitation, seconds of speech")
    baseline_s: float = Field(3.0, gt=0.5, le=60, description="speech needed to learn a speaker's baseline, seconds")
    vad_margin_db: float = Field(15.0, gt=3, le=60, description="speech is this far above the noise floor, dB")
    vad_min_dbfs: float = Field(-50.0, ge=-90, le=-10, description="speech is never quieter than this, dBFS")
    vad_hangover_s: float = Field(0.3, ge=0, le=2, description="speech state holds this long after the last voiced frame")


class CallsConfig(Strict):
    auto: bool = Field(True, description="start/end calls from audio activity when no call_start/call_end command comes")
    idle_end_s: float = Field(30.0, gt=1, le=3600, description="auto mode: a call ends after this much silence")
    start_speech_s: float = Field(0.5, gt=0, le=30, description="auto mode: speech needed to start a call, seconds")
    min_call_s: float = Field(1.0, ge=0, le=60, description="a call is analysed in full once it has lasted this long: speech recognition starts then (the speech heard until then goes in first), and only such a call gets a summary; a shorter one (a burst of call_start commands) is recorded with its alerts only; 0: every call from its first sample")


class QueueConfig(Strict):
    capture_frames: int = Field(500, ge=10, le=100000, description="bound of the capture -> analysis queue, in 20 ms frames per line")
    retry_s: float = Field(2.0, gt=0, le=600, description="first retry delay for a device that is down (doubles up to 30 s)")


class RetentionConfig(Strict):
    """How long the call store keeps calls."""

    days: int | None = Field(None, ge=1, le=36500, description="calls that started more than this many days ago are deleted with their events and archives (checked at start and daily, logged); omitted: kept forever")


class AsrConfig(Strict):
    """Speech recognition. The model's kind (see `callcue models list`) picks the engine:
    a streaming transducer, or silero VAD + an offline model (Whisper, SenseVoice, Paraformer)."""

    model: str = Field("whisper-tiny.en", description="installed model name (callcue models list)")
    vad_model: str = Field("silero-vad", description="VAD model that cuts utterances for offline models")
    num_threads: int = Field(2, ge=1, le=64, description="threads of the shared recogniser")
    decoding_method: Literal["greedy_search", "modified_beam_search"] = Field(
        "greedy_search", description="streaming decoding (modified_beam_search is used when hotwords are set)")
    hotwords_file: Path | None = Field(None, description="streaming: product names etc. to favour, one per line")
    hotwords_score: float = Field(1.5, ge=0, le=10, description="streaming: bonus per hotword token")
    modeling_unit: Literal["cjkchar", "bpe", "cjkchar+bpe"] = Field(
        "cjkchar", description="streaming: how hotwords are split into model tokens")
    endpoint_rule1_s: float = Field(2.4, gt=0, le=30, description="streaming: endpoint after this silence with nothing decoded")
    endpoint_rule2_s: float = Field(0.8, gt=0, le=30, description="streaming: endpoint after this silence following speech")
    endpoint_rule3_s: float = Field(20.0, gt=1, le=120, description="streaming: endpoint after an utterance this long")
    partials: bool = Field(True, description="streaming: publish partial transcripts")
    language: str = Field("en", description="offline Whisper: spoken language")
    token_timestamps: bool = Field(False, description="ask the model for token times (needs a Whisper export with attention outputs)")
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="offline: silero speech probability threshold")
    vad_min_silence_s: float = Field(0.4, gt=0, le=5, description="offline: silence that ends an utterance")
    vad_min_speech_s: float = Field(0.25, gt=0, le=5, description="offline: shortest utterance kept")
    whisper_tail_s: float = Field(10.0, ge=0.5, le=20, description="offline Whisper: zero-feature padding after each utterance, seconds (more is more accurate, less is faster; see README)")
    whisper_busy_tail_s: float = Field(3.0, ge=0.5, le=20, description="offline Whisper, live: the padding used while other utterances wait for a decoder (a loaded box); equal to whisper_tail_s turns this off")
    max_utterance_s: float = Field(15.0, gt=1, le=29, description="offline: longer utterances are cut (Whisper hears 30 s)")
    record: bool = Field(True, description="offline: a second pass decodes each speaker's turn whole (the live finals' utterances with the audio between them) for the call record, which replaces the live finals in the store and feeds the after-call work (README, \"The call record\")")
    record_model: str | None = Field(None, description="offline: installed Whisper for the record pass (e.g. whisper-base); default: the live model")
    record_gap_s: float = Field(2.0, gt=0, le=30, description="offline record: a pause of the speaker longer than this ends the turn")
    record_turns: bool = Field(True, description="offline record: the other party starting to speak ends a speaker's turn; off: a stretch runs on (up to record_max_s of this speaker's speech, record_gap_s) as faster-whisper's VAD windows do")
    record_max_s: float = Field(24.0, ge=5, le=27, description="offline record: longest turn decoded as one (Whisper hears 30 s with padding)")
    pre_roll_s: float = Field(0.5, ge=0, le=2, description="audio before the VAD's speech onset sent along")
    post_roll_s: float = Field(1.0, ge=0, le=5, description="audio after speech ends sent along (endpointing needs it)")
    max_batch: int = Field(32, ge=1, le=512, description="streams decoded in one batched call")
    queue_chunks: int = Field(2000, ge=10, le=100000, description="bound of the audio queue into the engine")
    max_channels: int = Field(48, ge=2, le=4096, description="most call channels (line x speaker) open in the recogniser at once on the box, each with its own VAD or stream; beyond it a new call's speaker is not transcribed (logged, counted in health asr.refused_channels)")
    max_channels_per_line: int = Field(2, ge=2, le=64, description="the same cap per line (2: the agent and the customer of the call in progress)")
    max_pending_utterances: int = Field(64, ge=4, le=10000, description="offline: utterances cut and waiting for a decoder across the box; when the decoders fall further behind the oldest waiting one is dropped (logged, counted in health asr.dropped_utterances)")
    sensitive_words: Path | None = Field(None, description="word list for sensitive_word alerts (see README)")
    models_dir: Path | None = Field(None, description="where models are installed (default: CALLCUE_MODELS_DIR or models/installed)")


class AssistConfig(Strict):
    """The assist engine: rule pack, call flows, knowledge push, offers, redaction."""

    enabled: bool = Field(True, description="run the assist engine (needs speech recognition for anything but redaction)")
    content: Path | None = Field(None, description="content pack folder (flows/README.md); default: the sample insurance pack")
    reload_s: float = Field(2.0, ge=0.2, le=3600, description="how often the pack folder is checked for edits, seconds")
    knowledge: bool = Field(True, description="push knowledge articles for the customer's questions")
    knowledge_min_score: float | None = Field(None, ge=0, le=1, description="lowest retrieval score pushed (default: the retriever's calibrated value)")
    questions_only: bool = Field(True, description="search the knowledge base only for utterances that sound like questions")
    embeddings: bool = Field(True, description="use the OpenVINO sentence-embedding model when it is installed")
    embedding_model: str = Field("minilm-l6-v2", description="installed embedding model (callcue models list)")
    embedding_precision: Literal["int8", "fp32"] = Field("int8", description="which build of the embedding model to run")
    embedding_device: str = Field("CPU", description="OpenVINO device for embeddings: CPU, GPU (the NUC's iGPU), AUTO")
    deadline_grace_s: float = Field(30.0, ge=0, le=600, description="longest wait for recognition before a within_s required phrase is judged missing (judged sooner once a later utterance of that speaker is recognised)")
    redaction: RedactionConfig = Field(default_factory=RedactionConfig, description="masking of personal numbers in transcripts")


class AfterCallConfig(Strict):
    """What the box does when a call ends: ticket, summary, QA scorecard (README, "After the call")."""

    enabled: bool = Field(True, description="fill the ticket, write the summary and score the call on the content pack's templates and QA form when a call ends (needs the assist engine)")
    mask_personal: bool = Field(False, description="mask the values of personal ticket fields (policy and phone numbers) in the published and stored ticket and in corrections, with assist.redaction.mask; off: the agent gets them in full to file the ticket (transcripts and evidence are always redacted)")


class SiteConfig(Strict):
    site: str = Field(description="site id (topic level)")
    floor: str = Field(description="floor id (topic level)")
    box: str = Field(description="this box's id (topic level)")
    broker: BrokerConfig | None = Field(None, description="external broker; when omitted an embedded Mosquitto runs")
    embedded_broker: EmbeddedBrokerConfig = Field(default_factory=EmbeddedBrokerConfig, description="embedded broker settings")
    data_dir: Path = Field(Path("var"), description="where the call store and outbox live (relative to the config file); the daemon makes its files 0600 and folders 0700")
    retention: RetentionConfig = Field(default_factory=RetentionConfig, description="how long calls are kept")
    hardware_dirs: list[Path] = Field(default_factory=list, description="extra folders of hardware profiles (hardware/profiles is always searched)")
    lines: list[LineConfig] = Field(default_factory=list, description="the audio lines this box taps")
    detectors: DetectorConfig = Field(default_factory=DetectorConfig, description="prosody alert thresholds")
    calls: CallsConfig = Field(default_factory=CallsConfig, description="call boundary detection")
    queues: QueueConfig = Field(default_factory=QueueConfig, description="bounded queues and retries")
    asr: AsrConfig | None = Field(None, description="speech recognition; omitted = prosody alerts only")
    assist: AssistConfig = Field(default_factory=AssistConfig, description="assist engine and redaction")
    aftercall: AfterCallConfig = Field(default_factory=AfterCallConfig, description="ticket, summary and scorecard at call end")

    @field_validator("site", "floor", "box")
    @classmethod
    def _ids(cls, v: str, info) -> str:
        return _topic_safe(v, info.field_name)

    @model_validator(mode="after")
    def _unique_lines(self) -> "SiteConfig":
        seen: set[str] = set()
        for line in self.lines:
            if line.id in seen:
                raise ValueError(f"line id {line.id!r} appears twice")
            seen.add(line.id)
        return self

    @property
    def topic_root(self) -> str:
        return f"callcue/v1/{self.site}/{self.floor}"


def _rebase(cfg: SiteConfig, base: Path) -> SiteConfig:
    """Relative paths in a config file are relative to that file."""

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p)

    lines = []
    for line in cfg.lines:
        src = line.source
        upd: dict = {"wav": fix(src.wav)}
        for who in ("agent", "customer"):
            t = getattr(src, who)
            if isinstance(t, SpeakerTap) and t.wav is not None:
                upd[who] = t.model_copy(update={"wav": fix(t.wav)})
        lines.append(line.model_copy(update={"source": src.model_copy(update=upd)}))
    asr = cfg.asr
    if asr is not None:
        asr = asr.model_copy(update={k: fix(getattr(asr, k)) for k in ("hotwords_file", "sensitive_words", "models_dir")})
    assist = cfg.assist.model_copy(update={"content": fix(cfg.assist.content)})
    broker = cfg.broker
    if broker is not None:
        broker = broker.model_copy(update={k: fix(getattr(broker, k))
                                           for k in ("ca_file", "certfile", "keyfile", "credentials_file")})
    embedded = cfg.embedded_broker.model_copy(update={"acl_dir": fix(cfg.embedded_broker.acl_dir)})
    return cfg.model_copy(update={
        "broker": broker,
        "embedded_broker": embedded,
        "asr": asr,
        "assist": assist,
        "lines": lines,
        "data_dir": fix(cfg.data_dir),
        "hardware_dirs": [fix(d) for d in cfg.hardware_dirs],
    })


def load_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    cfg = load_model(path, SiteConfig)
    return _rebase(cfg, path.resolve().parent)


def default_config(**overrides) -> SiteConfig:
    """The embedded defaults (demo, replay without --config)."""
    base = dict(site="demo", floor="f1", box="box1")
    base.update(overrides)
    return SiteConfig(**base)


__all__ = [
    "ConfigError", "SiteConfig", "LineConfig", "SourceConfig", "SpeakerTap", "DetectorConfig",
    "BrokerConfig", "EmbeddedBrokerConfig", "CallsConfig", "AsrConfig", "QueueConfig", "RetentionConfig", "load_config", "default_config", "SUPPORTED_RATES",
]
