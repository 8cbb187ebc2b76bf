"""Stage views: tree diffs of loop nests, Graphviz drawings, and the ``explain`` command."""
