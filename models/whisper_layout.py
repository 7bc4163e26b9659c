"""Names sherpa-onnx's offline Whisper code reads (csrc/offline-whisper-model.cc,
offline-whisper-greedy-search-decoder.cc): graph inputs and outputs, and the encoder
metadata keys. Shared by the converter (whisper_torch.py) and the loader
(whisper_check.py) without importing torch."""

ENCODER_INPUTS = ["mel"]
ENCODER_OUTPUTS = ["n_layer_cross_k", "n_layer_cross_v"]
DECODER_INPUTS = ["tokens", "in_n_layer_self_k_cache", "in_n_layer_self_v_cache",
                  "n_layer_cross_k", "n_layer_cross_v", "offset"]
# The fourth output (alignment heads' cross-attention, for token timestamps) is optional
# to sherpa-onnx; the official release has three.
DECODER_OUTPUTS = ["logits", "out_n_layer_self_k_cache", "out_n_layer_self_v_cache", "cross_attention_weights"]
# Metadata keys sherpa-onnx refuses to load without (SHERPA_ONNX_READ_META_DATA ends the
# process when one is missing, so the loader checks them first).
REQUIRED_METADATA = ("n_mels", "n_text_layer", "n_text_ctx", "n_text_state", "n_vocab", "sot", "eot",
                     "blank_id", "translate", "transcribe", "is_multilingual", "no_timestamps",
                     "no_speech", "sot_sequence")
