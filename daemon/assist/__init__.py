"""Assist engine: transcript and prosody events in, alerts and suggestions out.

Pure logic (rules, flows, knowledge retrieval, offers, redaction); the daemon and
`callcue replay` wire it to audio and MQTT.
"""
