-- offer.lua: a worker about to wait for work offers itself for a direct start (docs/queue.md
-- "Direct start"): the partition's offer key = its ID, and `offer_until` in the counts hash =
-- when the offer lapses (Redis' clock + ARGV[2] ms), so an enqueue that finds it starts its job
-- on this worker at once (enqueue.lua) instead of putting it on a stream. One offer per
-- partition: the last worker to offer is the one a job starts on. Its inbox is emptied first:
-- every entry it held was read (an offer stands only while none is unread).
-- KEYS[1] counts hash  KEYS[2] offer key  KEYS[3] the worker's inbox
-- ARGV[1] worker ID  ARGV[2] the offer's life (ms)
redis.call('DEL', KEYS[3])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], OFFER_UNTIL, int(now_ms() + tonumber(ARGV[2])))
return 1
