"""What the local stack, the emulator, the demo, the bench and the tests share (development code only)."""
