-- /describe: the prompts a describe job wrote for its image, in the order its buttons show them.
--   idx    : 0-3, the button (1-4) that runs /imagine with it
--   prompt : the suggestion as /imagine takes it (cleaned text, then --ar W:H)
CREATE TABLE describe_suggestions (
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    idx    INTEGER NOT NULL CHECK (idx >= 0),
    prompt TEXT    NOT NULL,
    PRIMARY KEY (job_id, idx)
);
