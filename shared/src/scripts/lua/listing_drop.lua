-- listing_drop.lua: remove tenant-listing members whose job was found gone (the listing
-- sweeper, a list read), each only if its score is still the one the reader saw. A submit that
-- reuses an expired job's ID lists it again under a new score (its new tool and time) between
-- the reader's check and this removal; checking and removing in one step keeps that entry, so
-- the new job is neither missing from lists nor mistaken for a fresh ID by the next submit.
-- KEYS[1] the tenant's listing
-- ARGV: member, score as read, member, score as read, ...
-- Returns how many members were removed.

local n = 0
for i = 1, #ARGV, 2 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) == tonumber(ARGV[i + 1]) then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
