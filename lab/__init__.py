"""The lab: the whole platform on one Linux machine (docs/lab.md)."""
