"""callcue: on-prem agent assist. Sub-packages: daemon, tui, models."""
