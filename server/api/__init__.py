"""The HTTP integration API: JSON over HTTP for bank systems, on its own port."""
