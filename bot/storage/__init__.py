"""The SQLite store every room writes through, and its migrations."""
