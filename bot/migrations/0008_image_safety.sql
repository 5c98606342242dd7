-- The image safety check's verdict on each job (see bot/image_safety.py):
--   safety         : unchecked (the check is off, and every job from before it), passed, flagged:<reason>,
--                    skipped:nsfw-channel (a Discord channel marked age-restricted)
--   safety_flagged : the 0-based places of the flagged images in the job's grid, comma-separated ('' when none)
ALTER TABLE jobs ADD COLUMN safety TEXT NOT NULL DEFAULT 'unchecked'
    CHECK (safety IN ('unchecked', 'passed') OR safety LIKE 'flagged:%' OR safety LIKE 'skipped:%');
ALTER TABLE jobs ADD COLUMN safety_flagged TEXT NOT NULL DEFAULT '';
