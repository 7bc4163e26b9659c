"""Speech recognition: sherpa-onnx engines, speech gating, word spotting."""
