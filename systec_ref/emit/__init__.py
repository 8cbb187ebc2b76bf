"""Stage 3: C99 from any loop nest, compiled with the system compiler and called through ctypes."""

from .c import emit_c

__all__ = ["emit_c"]
