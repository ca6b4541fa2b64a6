-- Each code remembers its lock's cap on overlapping live codes, so a
-- reprogrammed window (a lengthened stay) is held to the same cap.
ALTER TABLE door_codes
    ADD COLUMN lock_cap integer NOT NULL DEFAULT 5 CHECK (lock_cap > 0);
