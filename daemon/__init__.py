"""The appliance daemon: capture, prosody, bus, store, wiring, CLI."""
