"""Tests of kefu.client."""
