"""Small utilities, each written once: atomic file writes, package versions, path and process tests, flatten."""
