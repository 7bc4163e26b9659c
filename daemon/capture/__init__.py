"""Audio capture: devices (PyAudio, one worker process per device) and WAV replay,
turned into aligned 20 ms Blocks per line. See capture.CaptureManager."""
from .capture import CaptureManager, CapturePlan, plan_capture
from .profiles import HardwareProfile, load_profiles, resolve_device
from .queue import BlockQueue
from .wav_source import WavReplay, open_wav

__all__ = ["CaptureManager", "CapturePlan", "plan_capture", "HardwareProfile",
           "load_profiles", "resolve_device", "BlockQueue", "WavReplay", "open_wav"]
