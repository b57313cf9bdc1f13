"""The state: the document and its rules, its shape, the file on disk and its lock, the reset."""
