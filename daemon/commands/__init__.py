"""Sub-commands of the `callcue` CLI, one module each."""
