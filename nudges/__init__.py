"""The domain of Reinforce: pure Python, no I/O, no clock, no environment."""
