-- bookings migrate: one key of the earlier release becomes its key of this release.
-- KEYS[1] the new key, KEYS[2] the old one (same hash tag). Returns 1 if something moved.
return adopt(KEYS[1], KEYS[2])
