"""imaginebot's application core. Never imports torch or diffusers: the engine process does that."""
