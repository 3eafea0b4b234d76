"""Listen and learn: suggested KB entries from what agents answered (docs/listen-and-learn.md)."""
