"""Measuring: our training step beside a reference step, several seeds per program, the loop end
to end, and compile time and memory by depth (`resnet-jax bench`, docs/speed.md)."""
