"""The call store: TinyDB files owned by one writer thread, written atomically.

See calls.py for the file layout, batching and what a crash can lose.
"""
from .atomic import AtomicJSONStorage, CorruptStoreError, StoreError
from .calls import (BadInput, CallEndedError, CallStore, DuplicateCallError, StoreBusyError, StoreClosedError,
                    StoreLockedError, UnknownAlertError, UnknownCallError)

__all__ = [
    "AtomicJSONStorage", "BadInput", "CallEndedError", "CallStore", "CorruptStoreError", "DuplicateCallError",
    "StoreBusyError", "StoreClosedError", "StoreError", "StoreLockedError", "UnknownAlertError",
    "UnknownCallError",
]
