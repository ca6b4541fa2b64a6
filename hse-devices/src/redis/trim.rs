//! The script that acks a batch and trims the events stream, for every
//! consumer group at once (the writers' and each module's, see
//! [`EventGroups`](crate::groups::EventGroups)).
//!
//! `XTRIM MINID` frees whole stream nodes, where the `XDEL` of a thousand
//! ids kept Redis busy ~0.5 ms while every device's `XADD` waited. It used
//! to consider the acking group only, which would have dropped entries
//! another group had not read yet.

/// Acks `ARGV[2..]` in group `ARGV[1]` of stream `KEYS[1]`, then trims the
/// stream below the oldest entry any group still needs: a group's oldest
/// pending entry, or, with none pending, the entry after its last
/// delivered one (that one is deleted too when no group needs it).
/// Entries newer than a group's last delivered one were never delivered to
/// it, and older ones are all acked (delivery is in id order), so the trim
/// removes only entries every group is done with.
pub(super) const ACK_AND_TRIM: &str = r"
for i = 2, #ARGV, 1000 do
    redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local function older(a, b)
    local ams, aseq = string.match(a, '(%d+)-(%d+)')
    local bms, bseq = string.match(b, '(%d+)-(%d+)')
    ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
    return ams < bms or (ams == bms and aseq < bseq)
end
local keep, inclusive = nil, false
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    local id, with = fields['last-delivered-id'], false
    if fields['pending'] > 0 then
        id, with = redis.call('XPENDING', KEYS[1], fields['name'])[2], true
    end
    if keep == nil or older(id, keep) or (id == keep and with) then
        keep, inclusive = id, with
    end
end
if keep == nil then return 0 end
redis.call('XTRIM', KEYS[1], 'MINID', keep)
if not inclusive then redis.call('XDEL', KEYS[1], keep) end
return 0";
