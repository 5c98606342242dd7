"""The owner's command line and upkeep tools: python -m bot, generate, credits, models, db check, doctor, folders,
logs."""
