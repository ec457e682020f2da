"""kefu.protocol: the sans-IO core."""
