"""Supervisor dashboard and agent desk client (Textual), MQTT clients of contract v1."""
