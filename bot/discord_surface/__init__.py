"""The Discord surface outside the cogs: the bot class, connecting, the token, start-up and permission checks."""
