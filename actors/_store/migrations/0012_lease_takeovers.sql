-- How many times a lease was taken from an owner that neither released it nor renewed
-- it in time (its owner was lost or stuck). Releasing sets `released`, so a lease handed
-- on in order (a restart, an admission after queueing) is no takeover. An execution
-- whose lease is taken over too many times is failed instead of taking down owner after
-- owner.
ALTER TABLE leases
    ADD COLUMN takeovers integer NOT NULL DEFAULT 0,
    ADD COLUMN released  boolean NOT NULL DEFAULT false;
