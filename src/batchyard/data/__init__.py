"""Data in and out: reading submitted items (JSONL, CSV), writing result files, the bytes on disk."""
