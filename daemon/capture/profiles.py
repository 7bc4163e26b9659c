"""Hardware profiles: what a site engineer knows about an audio interface.

A profile names an interface, says how to find it among the PyAudio devices (a
case-insensitive substring of the device name) and how to open it. Lines refer to a
profile by name in ``source.device``; anything that is not a profile name is used as
a device-name substring directly.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from ..config import ID_RE, SUPPORTED_RATES, SiteConfig
from ..schema import Strict
from ..yamlfile import ConfigError, load_model

REPO_PROFILES = Path(__file__).resolve().parents[2] / "hardware" / "profiles"


class HardwareProfile(Strict):
    name: str = Field(description="profile name that lines use in source.device")
    description: str = Field(description="what the interface is, one line")
    match: str = Field(min_length=1, description="case-insensitive substring of the PyAudio device name that selects this interface")
    channels: int | None = Field(None, ge=1, le=64, description="channel count to open the device with (hw devices accept only their own count); "
                                 "omitted: the highest channel a line maps, plus one")
    sample_rates: list[int] = Field(default_factory=lambda: list(SUPPORTED_RATES), min_length=1,
                                    description="line rates (Hz) the device, as matched, can be opened at")
    clocked: bool = Field(True, description="the device delivers audio at its sample rate (real hardware); false for ALSA "
                          "file/null taps, which deliver as fast as they are read, so capture paces them to the wall clock")
    notes: str = Field("", description="wiring and setup notes for the site engineer")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(f"profile name {v!r} must be 1-64 letters, digits, '_', '.', '-'")
        return v

    @field_validator("sample_rates")
    @classmethod
    def _rates(cls, v: list[int]) -> list[int]:
        bad = [r for r in v if r not in SUPPORTED_RATES]
        if bad:
            raise ValueError(f"rates {bad} are not line rates; callcue captures at {list(SUPPORTED_RATES)} Hz")
        return v


def profile_dirs(cfg: SiteConfig | None = None) -> list[Path]:
    """The repo's hardware/profiles, then the site's hardware_dirs, in search order."""
    return [REPO_PROFILES, *(cfg.hardware_dirs if cfg else [])]


def load_profiles(cfg: SiteConfig | None = None, dirs: list[Path] | None = None) -> dict[str, HardwareProfile]:
    """All profiles by name; a name defined twice, or a bad file, raises ConfigError (file:line: field)."""
    found: dict[str, HardwareProfile] = {}
    origin: dict[str, Path] = {}
    errors: list[str] = []
    for d in (dirs if dirs is not None else profile_dirs(cfg)):
        d = Path(d)
        if not d.is_dir():
            errors.append(f"{d}: hardware profile folder not found")
            continue
        for path in sorted(d.glob("*.yaml")):
            try:
                prof = load_model(path, HardwareProfile)
            except ConfigError as exc:
                errors.append(str(exc))
                continue
            if prof.name in found:
                errors.append(f"{path}: profile {prof.name!r} is already defined in {origin[prof.name]}")
                continue
            found[prof.name] = prof
            origin[prof.name] = path
    if errors:
        raise ConfigError("\n".join(errors))
    return found


def resolve_device(name: str, profiles: dict[str, HardwareProfile]) -> tuple[str, int | None]:
    """(device-name substring, channels to open or None) for a line's ``device`` value."""
    prof = profiles.get(name)
    if prof is not None:
        return prof.match, prof.channels
    return name, None

