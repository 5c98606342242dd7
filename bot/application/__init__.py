"""The door: the service every surface calls, its member and moderator actions, what admission returns, who may
moderate."""
