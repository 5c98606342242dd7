"""3. Running a job: the worker, the engine process's supervisor and start-up, the periodic upkeep, the heartbeat, and
durable delivery of results."""
