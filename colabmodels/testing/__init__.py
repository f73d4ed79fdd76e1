"""Test helpers: the Drive emulator."""
