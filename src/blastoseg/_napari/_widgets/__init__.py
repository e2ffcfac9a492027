"""The blastoseg dock (main) and its parts: Segment, Correct, Train, Measure."""
