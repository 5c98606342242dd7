"""1. A request: the prompt and its flags, permutations, sizes, sweeps, images, preferences, buttons, moderation, and
preparation that checks them all before anything is charged."""
