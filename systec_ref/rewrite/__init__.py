"""Stage 2: named rewrites of the loop nest, one pass per module."""
