"""Training engine: pure jit-compiled steps (engine), the shared loop (loop), checkpoints."""
